@signing
Feature: Webhook delivery: redirects, timeouts and retries
  As the operator of a webhook receiver I want the relay to treat my answers the way docs/webhooks.md
  says — any 2xx ends a delivery, a redirect is a failure it does not follow, other 4xx are final;
  5xx, 408, 429, timeouts, dropped and refused connections are retried, up to WEBHOOK_MAX_ATTEMPTS
  attempts in all, with exponential backoff and jitter and Retry-After honoured up to 30 s — and every
  retry to be the same event, signed afresh, so that I can deduplicate on webhook-id.

  The gate's receiver answers each attempt as the scenario scripts it, and answers 200 again when the
  scenario ends. What it captured (every attempt byte for byte, with its arrival time on the
  receiver's clock) is judged by the gate's own oracle, gate/oracles/webhooks.py. WEBHOOK_TIMEOUT_S,
  WEBHOOK_MAX_ATTEMPTS and WEBHOOK_BACKOFF_BASE_S are the target's: [deliveries] timeout_s,
  max_attempts and backoff_base_s of its config, or the reference stack's own settings.

  @needs-dev-key @needs-receiver @needs-signing-secret @quota-1
  Scenario: Every retry is the same event, with a fresh timestamp and fresh signatures
    Given the receiver answers the next attempts with
      | answer                                  |
      | 503 with Retry-After: 2                 |
      | the connection closed without an answer |
    When the developer executes a previewed action through the scripted receiver
    Then the receiver got 3 attempts and the execute answered 200 reporting 3 attempts
    And every attempt carries the webhook-id and X-Request-ID the execute answered with
    And every attempt's body is byte for byte the body the preview announced
    And each attempt's webhook-timestamp is the second it was signed, new on every retry
    And each attempt is signed for its own timestamp with the signing secret

  @needs-dev-key @needs-receiver @quota-7
  Scenario: A delivery is retried after a 5xx, a 408 or a 429, and ends at once on any other 4xx
    When the developer executes an action once for each first answer of the receiver
      | first answer | attempts | execute answers |
      | 400          | 1        | 502             |
      | 410          | 1        | 502             |
      | 408          | 2        | 200             |
      | 429          | 2        | 200             |
      | 500          | 2        | 200             |
      | 501          | 2        | 200             |
      | 504          | 2        | 200             |
    Then every delivery made the attempts its row says, and the execute answered as its row says

  @needs-dev-key @needs-receiver @quota-6
  Scenario: A redirect fails the delivery and is not followed, and any 2xx ends it
    When the developer executes an action once for each first answer of the receiver
      | first answer                        | attempts | execute answers |
      | 301 to another path of the receiver | 1        | 502             |
      | 302 to another path of the receiver | 1        | 502             |
      | 307 to another path of the receiver | 1        | 502             |
      | 308 to another path of the receiver | 1        | 502             |
      | 201                                 | 1        | 200             |
      | 204                                 | 1        | 200             |
    Then every delivery made the attempts its row says, and the execute answered as its row says
    And no attempt followed a redirect

  @needs-dev-key @needs-receiver @quota-3
  Scenario: Retry-After on a 429 or a 503 is waited for, up to 30 s
    When the developer executes an action once for each first answer of the receiver
      | first answer                                 | next attempt              |
      | 429 with Retry-After: 1                      | not sooner than 1 s after |
      | 503 with Retry-After: an HTTP-date 2 s ahead | not sooner than 1 s after |
      | 429 with Retry-After: 3600                   | none, or within 30 s      |
    Then each retry waited as its row says

  @needs-dev-key @needs-receiver @quota-1
  Scenario: An attempt is cut off at WEBHOOK_TIMEOUT_S however the receiver stalls, and retried
    Given the receiver answers the next attempts with
      | answer                                      |
      | 200 after WEBHOOK_TIMEOUT_S + 1.5 s         |
      | 200 trickled over WEBHOOK_TIMEOUT_S + 2.5 s |
    When the developer executes an action through the scripted receiver
    Then the receiver got 3 attempts and the execute answered 200 reporting 3 attempts
    And each retry came WEBHOOK_TIMEOUT_S after the attempt before it, within its backoff

  @needs-dev-key @needs-receiver @quota-1
  Scenario: A delivery the receiver keeps failing ends after WEBHOOK_MAX_ATTEMPTS attempts, answered 502
    Given the receiver answers every attempt with 500
    When the developer executes an action through the scripted receiver
    Then the receiver got WEBHOOK_MAX_ATTEMPTS attempts, and none after the execute answered
    And the execute answered 502 naming the failure and reporting WEBHOOK_MAX_ATTEMPTS attempts

  @needs-control @needs-dev-key @needs-receiver @quota-6
  Scenario: Retries back off exponentially with full jitter, at a WEBHOOK_MAX_ATTEMPTS of 4
    Given a relay replica with WEBHOOK_MAX_ATTEMPTS=4 and WEBHOOK_BACKOFF_BASE_S=0.4
    And the receiver answers every attempt with 503
    When the developer executes 4 actions on that replica
    Then each delivery made exactly 4 attempts
    And every wait before attempt n+1 was within its bound base · 2^(n-1), give or take 0.3 s of overhead
    And the waits were spread across their bounds, neither all at the bound nor all near zero
    And at least one wait fell in the lower half of its bound

  @needs-control @needs-dev-key @quota-1
  Scenario: A refused connection is retried up to WEBHOOK_MAX_ATTEMPTS attempts, then answered 502
    Given a relay replica with WEBHOOK_MAX_ATTEMPTS=3 whose WEBHOOK_URL is a port that refuses connections
    When the developer executes an action on the refusing replica
    Then the execute answered 502 naming the refused connection and reporting 3 attempts
