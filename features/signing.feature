@signing
Feature: Signed webhook delivery
  As the operator of a webhook receiver I want every relay delivery signed over the exact bytes sent,
  with a timestamp, a unique id and the id of the request that caused it, so that my receiver can
  reject forged, altered, stale and replayed deliveries and correlate each one with the relay's logs.

  The seed's signing smoke (preview -> execute; the receiver got X-Signature and X-Request-ID; the
  HMAC recomputed locally matches), checked against the raw bytes the receiver captured. The judges
  are the gate's own oracle (gate/oracles/webhooks.py: the key a secret stands for, both signatures,
  the ±300 s window, written from docs/webhooks.md and checked against published vectors) and the
  independent standardwebhooks package. How the relay's reference verifier treats altered, stale and
  replayed copies is a unit test of that verifier (tests/service/test_signing.py), not a criterion of
  a target.

  @needs-dev-key @needs-receiver @quota-1
  Scenario: Every delivery is signed and names the request that caused it
    When the developer executes a previewed action
    Then the delivery carries an X-Signature of the form sha256=<64 hex digits>
    And the delivery carries webhook-id, webhook-timestamp and v1 webhook-signature headers
    And the delivery carries an X-Request-ID
    And the delivery is UTF-8 JSON sent as Content-Type application/json

  @needs-dev-key @needs-receiver @needs-signing-secret @quota-1
  Scenario: X-Signature is the HMAC-SHA256 of the exact bytes received
    When the developer executes a previewed action
    Then the delivered body is byte for byte the body the preview announced
    And the X-Signature recomputed over the received bytes with the signing secret matches

  @needs-dev-key @needs-receiver @needs-signing-secret @quota-1
  Scenario: The Standard Webhooks signature covers id, timestamp and body and verifies independently
    When the developer executes a previewed action
    Then the webhook-signature recomputed over id, timestamp and the received bytes matches
    And the gate's verifier accepts the delivery at the time it arrived, holding only the signing secret
    And the standardwebhooks package accepts the delivery

  @needs-dev-key @needs-receiver @quota-3
  Scenario: Each delivery carries the request id and webhook id of its own execute
    When the developer executes the same action 3 times across the replicas
    Then each delivery's X-Request-ID is the request id its execute answered with
    And each delivery's webhook-id is the webhook id its execute answered with
    And no two deliveries share an X-Request-ID or a webhook-id

  @needs-control @needs-dev-key @needs-receiver @needs-signing-secret @quota-1
  Scenario: A relay in the middle of a rotation signs each delivery with every secret, primary first
    Given a relay replica signing with a whsec_ next secret, and the current and an older secret as extras
    When the developer executes a previewed action on that replica
    Then the delivery carries one v1 webhook-signature entry per secret, space-separated, in the configured order
    And the gate's verifier accepts it holding any one of the secrets, and refuses it holding an unrelated one
    And its X-Signature is made with the next secret alone
