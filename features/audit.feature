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
    When the developer reads the audit log with these queries
      | query                         |
      | none                          |
      | workspace=its own workspace   |
      | status=ok                     |
      | limit=1                       |
    Then every audit read is refused with 403 and lists no records
    And every audit refusal carries the expected security headers

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
    And the 502 carries the rate-limit headers every execute carries
    And an admin finds that execute in the audit log with status error

  @needs-dev-key @needs-admin-key @needs-receiver @quota-1
  Scenario: A delivery the receiver refuses for good with a 4xx is answered 502 and audited as an error
    Given the receiver answers every delivery with 410
    When the developer executes an action the receiver refuses
    Then the execute is answered 502 naming the failed delivery
    And the receiver saw every attempt the execute reported
    And the 502 carries the rate-limit headers every execute carries
    And an admin finds that execute in the audit log with status error

  @needs-control @needs-dev-key @needs-receiver @quota-1
  Scenario: With the audit database down, execute is refused and no webhook is sent
    Given the audit database is stopped
    When the developer executes an action while the audit database is down
    Then the execute is answered 503 with Retry-After
    And the receiver got no delivery from it
    And every replica still lists and previews actions

  @needs-dev-key @quota-none
  Scenario: Only the exact API key authenticates, whatever the case of the Bearer scheme
    When the developer's key is sent in these forms to GET /actions and POST /actions/preview
      | Authorization                               | status |
      | Bearer {key}                                | 200    |
      | bearer {key}                                | 200    |
      | BEARER {key}                                | 200    |
      | Bearer  {key}                               | 200    |
      | Bearer {key, its last character changed}    | 401    |
      | Bearer {key, without its last character}    | 401    |
      | Bearer {key, one character longer}          | 401    |
      | Bearer {key, its letters in the other case} | 401    |
      | Bearer {key} {key}                          | 401    |
      | Basic {key}                                 | 401    |
      | {key}                                       | 401    |
      | Bearer                                      | 401    |
    Then each form is answered with the status listed

  @needs-dev-key @needs-admin-key @needs-receiver @quota-3
  Scenario: The audit log lists newest first, and its cursor pages through every record once
    Given the developer has executed 3 actions that reached the receiver
    When an admin pages through the workspace's audit records one at a time
    Then the 3 executes come first, newest first, one per page
    And no record is listed twice, and each page's record is older than the one before
    And every page read with a workspace or status filter holds only records that match it

  @needs-admin-key @quota-none
  Scenario: The audit log takes a limit from 1 to 500, and refuses 0 and 501
    When an admin reads the audit log with these limits
      | limit | status |
      | 0     | 422    |
      | 1     | 200    |
      | 500   | 200    |
      | 501   | 422    |
    Then each read is answered with the status listed, and none lists more records than its limit

  @needs-dev-key @needs-admin-key @quota-3
  Scenario: Each audit filter narrows the records, and a date-time without an offset is read as UTC
    Given the developer has executed two notify.send actions and one ticket.create
    When an admin filters the workspace's audit records by action, by status and by another workspace
    Then each filter lists only records that match it, the executes among them exactly where they match
    When an admin reads the workspace's ticket.create records with these time filters around its created_at
      | filter | time                         | finds it |
      | since  | 1 s before, in UTC with Z    | yes      |
      | since  | 1 s after, in UTC with Z     | no       |
      | since  | 1 s before, without offset   | yes      |
      | since  | 1 s after, without offset    | no       |
      | since  | 1 s before, at +05:30        | yes      |
      | since  | 1 s after, at +05:30         | no       |
      | until  | 1 s after, at -04:00         | yes      |
      | until  | 1 s before, at -04:00        | no       |
      | until  | 1 s after, without offset    | yes      |
      | until  | 1 s before, without offset   | no       |
    Then each time filter finds the record or not, as listed

  @needs-dev-key @needs-admin-key @needs-receiver @quota-1
  Scenario: An execute's audit record is on file, pending, before its webhook leaves
    Given the receiver holds each delivery for a moment before answering
    When the developer executes an action while the receiver holds its delivery
    Then while the delivery was held, the audit log already listed the execute as pending
    And once the delivery was answered, the execute's record is complete
