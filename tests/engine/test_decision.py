from webhook.engine.decision import Action, Change, Decision, Violation


def test_policies_acted_counts_changes_violations_and_warnings() -> None:
    decision = Decision(
        object={},
        changes=(Change("test-defaults", "sizes", ("spec",), "set"),),
        violations=(Violation("requests-required", "cpu", Action.WARN, "missing"),),
        # A preset skipped for a conflict changes nothing, but it acted: it said why.
        warnings=("jvm-tuning.inject: preset skipped: env JAVA_TOOL_OPTIONS differs",),
    )
    assert decision.policies_acted() == ("jvm-tuning", "requests-required", "test-defaults")


def test_outcome_follows_the_action_mapping() -> None:
    warn = Violation("p", "r", Action.WARN, "m")
    assert Decision(object={}).outcome == "admitted"
    assert Decision(object={}, violations=(warn,)).outcome == "warned"
    assert Decision(object={}, warnings=("p.r: m",)).outcome == "warned"
    assert Decision(object={}, violations=(Violation("p", "r", Action.AUDIT, "m"),)).outcome == "admitted"
    deny = Violation("p", "r", Action.ENFORCE, "m")
    assert Decision(object={}, violations=(deny, warn)).outcome == "denied"
