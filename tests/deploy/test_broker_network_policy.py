"""The RabbitMQ pods are isolated too: AMQP only from the services and from namespaces labelled as subscribers,
clustering only among themselves, management and metrics only for the operator and Prometheus."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy._support import OVERLAYS, objects_of, render

BROKER_POD = {"app.kubernetes.io/name": "secondopinion-rabbitmq"}
SERVICE_POD = {"app.kubernetes.io/part-of": "secondopinion", "app.kubernetes.io/component": "server"}
SUBSCRIBER_NAMESPACE = {"secondopinion.example-hospital.jp/event-subscriber": "true"}


def admits(peer: dict[str, Any], pod: dict[str, str] | None = None, namespace: dict[str, str] | None = None) -> bool:
    """Does this `from` peer admit a pod with these labels, in its own namespace (None) or in a labelled one?"""
    if "namespaceSelector" in peer:
        if namespace is None or not peer["namespaceSelector"]["matchLabels"].items() <= namespace.items():
            return False
    elif namespace is not None:
        return False
    selector = peer.get("podSelector")
    if selector is None:
        return True
    if pod is None or not selector.get("matchLabels", {}).items() <= pod.items():
        return False
    return all(pod.get(rule["key"]) in rule["values"] for rule in selector.get("matchExpressions", []))


def ports_open_to(policy: dict[str, Any], pod: dict[str, str] | None = None,
                  namespace: dict[str, str] | None = None) -> set[int | str]:
    return {port["port"] for rule in policy["spec"].get("ingress", [])
            if any(admits(peer, pod, namespace) for peer in rule["from"]) for port in rule["ports"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_broker_admits_amqp_from_services_and_subscribers_only(overlay: str) -> None:
    policies = [p for p in objects_of(render(f"overlays/{overlay}"), "NetworkPolicy")
                if p["spec"]["podSelector"].get("matchLabels") == BROKER_POD]
    [policy] = policies
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert all(rule.get("from") and rule.get("ports") for rule in policy["spec"]["ingress"]), "no rule open to all"
    assert ports_open_to(policy, SERVICE_POD) == {5672, 5671}
    assert ports_open_to(policy, {**SERVICE_POD, "app.kubernetes.io/component": "migration"}) == {5672, 5671}
    assert ports_open_to(policy, {"app.kubernetes.io/name": "something-else"}) == set()
    assert ports_open_to(policy, {}, SUBSCRIBER_NAMESPACE) == {5672, 5671}
    assert ports_open_to(policy, {}, {"kubernetes.io/metadata.name": "elsewhere"}) == set()
    assert ports_open_to(policy, BROKER_POD) == {4369, 25672, 35672}
    assert ports_open_to(policy, {}, {"kubernetes.io/metadata.name": "rabbitmq-system"}) == {15672}
    assert ports_open_to(policy, {"app.kubernetes.io/name": "prometheus"},
                         {"kubernetes.io/metadata.name": "monitoring"}) == {15692}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_subscribers_reach_the_services_feeds_over_http_and_nothing_else(overlay: str) -> None:
    policies = objects_of(render(f"overlays/{overlay}"), "NetworkPolicy")
    for service in ("intake", "scheduling", "billing", "reporting"):
        pod = {**SERVICE_POD, "app.kubernetes.io/name": service}
        applying = [p for p in policies if "Ingress" in p["spec"]["policyTypes"]
                    and p["spec"]["podSelector"].get("matchLabels", {}).items() <= pod.items()]
        open_ports = {port for p in applying for port in ports_open_to(p, {}, SUBSCRIBER_NAMESPACE)}
        assert open_ports == {"http"}, service
