"""Kubernetes objects as podgate reads them: the admission request, pods and their templates, resource
quantities, label selectors, naming rules, and JSON on the hot path. Imports nothing else of podgate's but
webhook.errors."""
