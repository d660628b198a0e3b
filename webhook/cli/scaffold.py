"""`podgate scaffold`: a Deployment or Service for an app, with the policies' defaults already in it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from webhook.cli.common import add_policies_flag, load_or_report

EXIT_OK, EXIT_DENIED, EXIT_BAD_INPUT = 0, 1, 2


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "scaffold",
        help="print a Deployment or Service as the cluster would run it",
        description=__doc__,
    )
    kinds = parser.add_subparsers(dest="scaffold_kind", required=True, metavar="KIND")

    deploy = kinds.add_parser("deployment", help="a Deployment of one container with a port named http")
    _common(deploy)
    deploy.add_argument("--image", required=True, help="image name without tag, e.g. nginx")
    deploy.add_argument("--version", help="image tag; missing or latest gets a warning")
    deploy.add_argument("--replicas", "--replicaCount", type=int, default=1, help="default 1")
    deploy.add_argument("--port", type=int, default=80, help="container port, named http (default 80)")
    resources = deploy.add_argument_group(
        "resources", "left out, the policies' defaults apply (for --env test: policies/resources.yaml)"
    )
    resources.add_argument("--cpu", help="cpu request and limit, e.g. 250m")
    resources.add_argument("--memory", help="memory request and limit, e.g. 512Mi")
    resources.add_argument("--request-cpu", "--requestCPU", dest="request_cpu", help="overrides --cpu")
    resources.add_argument("--limit-cpu", "--limitCPU", dest="limit_cpu", help="overrides --cpu")
    resources.add_argument("--request-memory", "--requestMemory", dest="request_memory")
    resources.add_argument("--limit-memory", "--limitMemory", dest="limit_memory")
    deploy.set_defaults(run=run_deployment)

    svc = kinds.add_parser("service", help="a Service selecting the pods of the Deployment of the same name")
    _common(svc, name_aliases=("--serviceName",))
    svc.add_argument("--type", "--serviceType", dest="type", default="ClusterIP", help="default ClusterIP")
    svc.add_argument("--port", type=int, default=80, help="service port, to the pods' http port (default 80)")
    svc.set_defaults(run=run_service)


def _common(parser: argparse.ArgumentParser, name_aliases: tuple[str, ...] = ()) -> None:
    parser.add_argument("--name", *name_aliases, dest="name", required=True, help="the app's name")
    parser.add_argument("--env", default="test", help="app.kubernetes.io/env label (default test)")
    parser.add_argument("-n", "--namespace", help="namespace to write into the manifest (default: none)")
    parser.add_argument(
        "-o", "--output-dir", dest="output_dir", metavar="DIR", help="write KIND.yaml there instead of stdout"
    )
    add_policies_flag(parser)


def run_deployment(args: argparse.Namespace) -> int:
    from webhook.cli.scaffolding import App, check_app, deployment, version_warning

    requests = {
        k: v
        for k, v in (("cpu", args.request_cpu or args.cpu), ("memory", args.request_memory or args.memory))
        if v
    }
    limits = {
        k: v
        for k, v in (("cpu", args.limit_cpu or args.cpu), ("memory", args.limit_memory or args.memory))
        if v
    }
    app = App(
        name=args.name,
        image=args.image,
        version=args.version,
        env=args.env,
        replicas=args.replicas,
        port=args.port,
        namespace=args.namespace,
        requests=requests,
        limits=limits,
    )
    problems = check_app(app)
    if problems:
        return _bad_input(problems)
    warning = version_warning(app)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    return _emit(deployment(app), "deployment", args)


def run_service(args: argparse.Namespace) -> int:
    from webhook.cli.scaffolding import SERVICE_TYPES, check_names, service

    problems = check_names(args.name, args.env, args.namespace)
    if args.type not in SERVICE_TYPES:
        problems.append(f"--type must be one of {', '.join(SERVICE_TYPES)} (got {args.type!r})")
    if not 1 <= args.port <= 65535:
        problems.append(f"--port must be between 1 and 65535 (got {args.port})")
    if problems:
        return _bad_input(problems)
    obj = service(args.name, env=args.env, port=args.port, type_=args.type, namespace=args.namespace)
    return _emit(obj, "service", args)


def _bad_input(problems: list[str]) -> int:
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _emit(obj: dict[str, Any], kind: str, args: argparse.Namespace) -> int:
    """Settle the object through the policies; print or write it unless the cluster would refuse it."""
    import yaml

    from webhook.cli.scaffolding import settle

    policies = load_or_report(args.policies)
    if policies is None:
        return EXIT_BAD_INPUT
    stored, decision = settle(obj, policies)
    for warning in (*decision.warnings, *decision.admission_warnings()):
        print(f"warning: {warning}", file=sys.stderr)
    if not decision.allowed:
        print(
            f"error: the cluster would deny this {obj['kind']}: {decision.denial_message()}", file=sys.stderr
        )
        if kind == "deployment":
            print("hint: size it with --cpu and --memory (requests and limits)", file=sys.stderr)
        return EXIT_DENIED
    if decision.pod_changes:
        # Policies that match the pods and not the Deployment: the cluster applies them, the
        # template cannot show them.
        print(f"note: pods of {decision.workload} will also get:", file=sys.stderr)
        for change in decision.pod_changes:
            print(f"  {change.policy}.{change.rule}: {change.message}", file=sys.stderr)
    text = yaml.safe_dump(stored, sort_keys=False, default_flow_style=False)
    if args.output_dir is None:
        sys.stdout.write(text)
        return EXIT_OK
    target = Path(args.output_dir) / f"{kind}.yaml"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    except OSError as error:
        return _bad_input([f"cannot write {target}: {error.strerror}"])
    print(f"wrote {target}", file=sys.stderr)
    return EXIT_OK
