@audit
Feature: Authentication and the audit log
  As a security reviewer I want every call authenticated by its API key, the audit log readable by
  admins only, and every execute on record (delivered or not) before its webhook leaves, so that
  nothing the relay does is anonymous or unaccounted for.

  The seed's /audit smoke (an admin reads the audit log filtered by status=ok) plus the refusals
  around it, checked over HTTP and against what the webhook receiver actually got.

  @quota-none
  Scenario: A call without an API key is refused with a Bearer challenge
    When a client calls these endpoints without an API key
      | endpoint              |
      | GET /actions          |
      | POST /actions/preview |
      | POST /actions/execute |
      | GET /audit            |
    Then every call is refused with 401 and a Bearer challenge
    And every refusal carries the expected security headers

  @quota-none
  Scenario: A call with an unknown API key is refused with a Bearer challenge
    When a client calls these endpoints with an unknown API key
      | endpoint              |
      | GET /actions          |
      | POST /actions/preview |
      | POST /actions/execute |
      | GET /audit            |
    Then every call is refused with 401 and a Bearer challenge
    And every refusal carries the expected security headers

  @needs-dev-key @quota-none
  Scenario: A developer key cannot read the audit log
    When the developer reads the audit log
    Then the audit read is refused with 403 and lists no records
    And the audit refusal carries the expected security headers

  @needs-dev-key @needs-admin-key @needs-receiver @quota-3
  Scenario: An admin finds the executes just made in the audit log, as the receiver saw them
    Given the developer has executed 3 actions that reached the receiver
    When an admin reads the audit log filtered by status ok
    Then every audit row listed has status ok
    And each execute is listed with the request id and webhook id its delivery carried

  @needs-dev-key @needs-admin-key @needs-receiver @quota-1
  Scenario: A delivery the receiver refuses is answered 502 and audited as an error
    Given the receiver answers every delivery with 500
    When the developer executes an action the receiver refuses
    Then the execute is answered 502 naming the failed delivery
    And the receiver saw every attempt the execute reported
    And an admin finds that execute in the audit log with status error

  @needs-control @needs-dev-key @needs-receiver @quota-1
  Scenario: With the audit database down, execute is refused and no webhook is sent
    Given the audit database is stopped
    When the developer executes an action while the audit database is down
    Then the execute is answered 503 with Retry-After
    And the receiver got no delivery from it
    And every replica still lists and previews actions
