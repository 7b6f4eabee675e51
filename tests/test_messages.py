"""Building ext_proc replies (the shared reply to a routed request body, and its copies with a body), and
reading the attributes Envoy sends."""

from __future__ import annotations

from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from translator.extproc import messages as m


def test_a_routed_reply_with_a_body_is_a_copy_of_the_shared_one_given_the_body() -> None:
    headers, remove = {"x-tokengate-model": "gpt-test#openai", ":path": "/v1/chat/completions"}, ["api-key"]
    shared = m.routed(headers, remove)
    one, two = m.routed(headers, remove, b'{"a":1}'), m.routed(headers, remove, b'{"bb":22}')

    def sets(r: pb.ProcessingResponse) -> dict[str, bytes]:
        return {h.header.key: h.header.raw_value for h in r.request_body.response.header_mutation.set_headers}

    assert sets(one) == {"x-tokengate-model": b"gpt-test#openai", ":path": b"/v1/chat/completions",
                         "content-length": b"7"}
    assert sets(two)["content-length"] == b"9" and two.request_body.response.body_mutation.body == b'{"bb":22}'
    assert list(one.request_body.response.header_mutation.remove_headers) == ["api-key"]
    assert one.request_body.response.clear_route_cache
    assert m.routed(headers, remove) is shared and "content-length" not in sets(shared)
    assert not shared.request_body.response.HasField("body_mutation")


def test_a_body_reply_is_the_common_response_it_stands_for() -> None:
    for body in (None, b"", b'data: {"x":1}\n\n'):
        assert m.body_reply(body).SerializeToString() == m.response_body(m.common(body=body)).SerializeToString()
    assert m.body_reply(b"").response_body.response.body_mutation.clear_body


def test_response_facts_are_what_attributes_says() -> None:
    req = pb.ProcessingRequest()
    assert m.response_facts(req, "d") == (0, 1, "")  # no attributes sent
    req.attributes[m.ATTR_NAMESPACE].update({"response.code": 503})
    assert m.response_facts(req, "d") == (503, 1, "")  # Envoy's own reply: no attempt, no deployment
    req.attributes[m.ATTR_NAMESPACE].update({"upstream.request_attempt_count": 2, "d": "oai", "other": "x"})
    attrs = m.attributes(req)
    assert m.response_facts(req, "d") == (attrs["response.code"], attrs["upstream.request_attempt_count"], "oai") \
        == (503, 2, "oai")
