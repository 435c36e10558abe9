@signing
Feature: Signed webhook delivery
  As the operator of a webhook receiver I want every relay delivery signed over the exact bytes sent,
  with a timestamp, a unique id and the id of the request that caused it, so that my receiver can
  reject forged, altered, stale and replayed deliveries and correlate each one with the relay's logs.

  The seed's signing smoke (preview -> execute; the receiver got X-Signature and X-Request-ID; the
  HMAC recomputed locally matches), checked against the raw bytes the receiver captured. The
  verifiers are the relay's published reference verifier (docs/webhooks.md) and the independent
  standardwebhooks package; the negative cases are copies of a real captured delivery, each altered
  in exactly one way.

  @needs-dev-key @needs-receiver @quota-1
  Scenario: Every delivery is signed and names the request that caused it
    When the developer executes a previewed action
    Then the delivery carries an X-Signature of the form sha256=<64 hex digits>
    And the delivery carries webhook-id, webhook-timestamp and v1 webhook-signature headers
    And the delivery carries an X-Request-ID

  @needs-dev-key @needs-receiver @needs-signing-secret @quota-1
  Scenario: X-Signature is the HMAC-SHA256 of the exact bytes received
    When the developer executes a previewed action
    Then the delivered body is byte for byte the body the preview announced
    And the X-Signature recomputed over the received bytes with the signing secret matches

  @needs-dev-key @needs-receiver @needs-signing-secret @quota-1
  Scenario: The Standard Webhooks signature covers id, timestamp and body and verifies independently
    When the developer executes a previewed action
    Then the webhook-signature recomputed over id, timestamp and the received bytes matches
    And the standardwebhooks package accepts the delivery

  @needs-dev-key @needs-receiver @quota-3
  Scenario: Each delivery carries the request id of its own execute
    When the developer executes 3 actions across the replicas
    Then each delivery's X-Request-ID is the request id its execute answered with
    And no two deliveries share an X-Request-ID

  @needs-dev-key @needs-receiver @needs-signing-secret @quota-1
  Scenario: The reference verifier rejects a captured delivery once altered, stale or replayed
    Given a signed delivery captured at the receiver
    When the reference verifier checks these copies of the delivery
      | delivery copy                          | checked by        | verdict               |
      | as captured                            | webhook-signature | accepted              |
      | as captured                            | X-Signature       | accepted              |
      | body with one character changed        | webhook-signature | no_matching_signature |
      | body with one character changed        | X-Signature       | no_matching_signature |
      | body re-serialised as equivalent JSON  | webhook-signature | no_matching_signature |
      | body re-serialised as equivalent JSON  | X-Signature       | no_matching_signature |
      | checked with a wrong secret            | webhook-signature | no_matching_signature |
      | checked with a wrong secret            | X-Signature       | no_matching_signature |
      | without webhook-id                     | webhook-signature | missing_header        |
      | without webhook-timestamp              | webhook-signature | missing_header        |
      | without webhook-signature              | webhook-signature | missing_header        |
      | without X-Signature                    | X-Signature       | missing_header        |
      | webhook-signature not v1,<base64>      | webhook-signature | malformed_header      |
      | webhook-timestamp not an integer       | webhook-signature | malformed_header      |
      | X-Signature not sha256=<64 hex>        | X-Signature       | malformed_header      |
      | webhook-timestamp moved 1 s, not re-signed | webhook-signature | no_matching_signature |
      | webhook-id changed, not re-signed      | webhook-signature | no_matching_signature |
      | re-signed 300 s in the past            | webhook-signature | accepted              |
      | re-signed 300 s in the future          | webhook-signature | accepted              |
      | re-signed 301 s in the past            | webhook-signature | timestamp_too_old     |
      | re-signed 301 s in the future          | webhook-signature | timestamp_too_new     |
      | replayed after it was processed        | webhook-signature | replayed              |
    Then every copy gets the verdict in its row

  @needs-dev-key @needs-receiver @needs-signing-secret @quota-1
  Scenario: During a secret rotation the reference verifier accepts a delivery signed with either secret
    Given a signed delivery captured at the receiver
    When the reference verifier checks the delivery signed and held with these secrets
      | signed with                | receiver holds     | checked by        | verdict               |
      | current (as captured)      | current and next   | webhook-signature | accepted              |
      | current (as captured)      | next and current   | webhook-signature | accepted              |
      | current (as captured)      | current and next   | X-Signature       | accepted              |
      | next                       | current and next   | webhook-signature | accepted              |
      | next                       | current and next   | X-Signature       | accepted              |
      | current and next           | current            | webhook-signature | accepted              |
      | current and next           | next               | webhook-signature | accepted              |
      | current and next           | unrelated          | webhook-signature | no_matching_signature |
    Then every copy gets the verdict in its row

  @needs-control @needs-dev-key @needs-receiver @needs-signing-secret @quota-1
  Scenario: A relay in the middle of a rotation signs each delivery with both secrets
    Given a relay replica signing with a next secret and the current one as extra
    When the developer executes a previewed action on that replica
    Then the delivery carries one v1 webhook-signature entry per secret
    And the reference verifier accepts it holding the current secret, the next secret or both
    And its X-Signature is made with the next secret
