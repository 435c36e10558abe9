@api
Feature: The API contract
  As a client developer I want the relay to keep every promise docs/service.md makes about its
  endpoints, request bodies, previews, errors, request ids and metrics, so that I can build against
  the document rather than against the implementation.

  Each scenario reads one part of docs/service.md as a contract and checks it over HTTP, near misses
  included: a body of exactly MAX_BODY_BYTES and one byte more, chunked or not; a preview_id altered,
  from another workspace, expired, redeemed twice; destinations one detail away from an allowed one.
  docs/promises/service.toml says which scenario (or unit test) checks each statement of the document.

  @quota-none
  Scenario: Liveness and readiness answer without a key, liveness to GET and HEAD alike
    When a client probes liveness and readiness without an API key
    Then liveness answers GET with 200 and {"ok": true}, and HEAD with 200 and no body
    And readiness answers 200 while the audit database answers

  @needs-control @quota-none
  Scenario: Liveness touches no dependency, and readiness follows the audit database but not Redis
    Given Redis is down
    Then every replica answers readiness with 200, reporting Redis
    And every replica answers liveness with 200
    When the audit database stops
    Then every replica answers readiness with 503 naming the database
    And every replica answers liveness with 200

  @needs-dev-key @needs-admin-key @quota-none
  Scenario: Any key lists the action catalogue, each action with a description and a JSON schema of its parameters
    When the catalogue is listed with a developer key and with an admin key
    Then both list exactly these actions, each with a description and a JSON schema of exactly these parameters
      | action         | parameters                    |
      | notify.send    | channel, message, severity    |
      | ticket.create  | title, priority, labels       |
      | deploy.promote | service, version, environment |

  @quota-none
  Scenario: /openapi.json describes every documented operation, and there is no HTML docs UI
    When a client reads /openapi.json without an API key
    Then it describes these operations
      | operation               |
      | GET /_stcore/health     |
      | HEAD /_stcore/health    |
      | GET /_stcore/ready      |
      | GET /actions            |
      | POST /actions/preview   |
      | POST /actions/execute   |
      | GET /audit              |
      | GET /metrics            |
    And GET /docs and GET /redoc are answered 404

  @needs-dev-key @needs-receiver @quota-1
  Scenario: A preview shows the exact bytes execute delivers, their SHA-256 and the destination host
    When the developer previews an action whose message is not ASCII
    Then the preview's body_sha256 is the SHA-256 of the body it shows
    When the developer executes that preview
    Then the receiver got exactly the bytes the preview showed, at the host the preview named

  @needs-dev-key @needs-admin-key @needs-receiver @quota-1
  Scenario: A preview has no side effects: no webhook and no audit record
    When the developer previews 3 actions
    Then the receiver got no delivery from them
    And the audit log has no record of them
    And previews beyond the workspace's whole quota spend none of its executes

  @needs-dev-key @needs-second-workspace @needs-receiver @quota-6
  Scenario: A preview_id executes only unaltered and in the workspace it was issued to, as often as asked
    Given the developer has previewed an action
    When the developer executes that preview twice
    Then both executes are delivered with the previewed bytes, each under a webhook id of its own
    When the developer executes that preview_id altered in one character at 3 places, and one issued to another workspace
    Then every one of those executes is refused with 422 and nothing is delivered

  @needs-control @needs-dev-key @needs-receiver @quota-1
  Scenario: A preview_id can no longer be executed once PREVIEW_TTL_S has passed
    Given a replica whose PREVIEW_TTL_S is 10 seconds
    When the developer previews an action on that replica
    Then the preview says it expires in 10 seconds
    When the developer executes that preview once it has expired
    Then the execute is refused with 422 and nothing is delivered

  @needs-dev-key @needs-receiver @quota-1
  Scenario: A preview_id issued by one replica executes on another
    When the developer previews an action on one replica and executes it on another
    Then the execute is delivered with the previewed bytes

  @needs-dev-key @needs-admin-key @needs-receiver @quota-1
  Scenario: An execute answers with its request id, webhook id, delivery status and latency, and writes one audit record
    When the developer executes a full action request
    Then the execute answers 200 with request_id, webhook_id, delivery status delivered and latency_ms
    And its request_id is the response's X-Request-ID and its webhook_id the delivery's webhook-id
    And the audit log holds exactly one record of it, with that webhook id

  @needs-dev-key @needs-receiver @quota-1
  Scenario: The workspace an action runs for comes only from the key
    When the developer previews and executes an action naming another workspace in an X-Workspace-ID header and a workspace query parameter
    Then the preview, the execute and the delivered body all name the key's workspace
    And an action request naming a workspace in its body does not run for that workspace

  @needs-dev-key @needs-receiver @quota-1
  Scenario: A destination must be an http(s) URL on an allowed host and port, without userinfo, control characters or spaces
    Given the receiver's host and port, where the service delivers by default
    When the developer previews an action for each of these destinations
      | destination                                  | status |
      | http://{allowed}/relay-gate/explicit         | 200    |
      | https://{allowed}/relay-gate/explicit        | 200    |
      | http://user:secret@{allowed}/relay-gate      | 422    |
      | http://{allowed}@evil.example/relay-gate     | 422    |
      | http://{host}:{other_port}/relay-gate        | 422    |
      | http://{allowed}.evil.example/relay-gate     | 422    |
      | http://evil.example/relay-gate               | 422    |
      | ftp://{allowed}/relay-gate                   | 422    |
      | //{allowed}/relay-gate                       | 422    |
      | http://{allowed}/relay gate                  | 422    |
      | http://{allowed}/relay{tab}gate              | 422    |
      | http://{allowed}/relay-gate{cr}{lf}X-Evil: 1 | 422    |
      | http://{allowed}/relay{nul}gate              | 422    |
    Then each preview is answered with the status listed
    When the developer executes an action for a destination with userinfo
    Then the execute is refused with 422 and nothing is delivered

  @needs-dev-key @quota-1
  Scenario: An action request with a field the document does not name is refused
    When the developer previews these action requests
      | request                                                                                          |
      | {"action": "notify.send", "params": {"channel": "ops", "message": "m"}, "workspace": "default"} |
      | {"action": "notify.send", "params": {"channel": "ops", "message": "m"}, "destinaton": "x"}      |
      | {"action": "notify.send", "params": {"channel": "ops", "message": "m", "colour": "red"}}        |
      | {"action": "ticket.create", "params": {"title": "t", "assignee": "someone"}}                    |
    Then every one is refused with 422
    When the developer executes a valid preview_id with one more field
    Then that execute is refused with 422

  @needs-dev-key @needs-admin-key @quota-none
  Scenario: Every refusal is a problem document carrying its request id, and bad input is never a 5xx
    When a client sends each of these requests
      | request                                                      | status |
      | GET /actions without an API key                              | 401    |
      | GET /actions with an unknown API key                         | 401    |
      | GET /audit with a developer key                              | 403    |
      | GET a path that does not exist                               | 404    |
      | DELETE /actions/preview                                      | 405    |
      | POST /actions/preview with a body over MAX_BODY_BYTES        | 413    |
      | POST /actions/preview with a body that is not UTF-8          | 400    |
      | POST /actions/preview with a body that is not JSON           | 4xx    |
      | POST /actions/preview naming an action that does not exist   | 422    |
      | POST /actions/preview with a parameter of the wrong type     | 422    |
      | GET /audit with limit 0                                      | 422    |
      | GET /audit with a cursor it never issued                     | 422    |
      | GET /audit with a status that does not exist                 | 422    |
    Then each is answered with the status listed, as application/problem+json
    And every problem names its type, title, status, detail and the request id of its X-Request-ID

  @quota-none
  Scenario: A method a path does not serve is answered 405 with an Allow header listing every method it serves
    When a client without a key sends GET, HEAD, POST, PUT, PATCH, DELETE and OPTIONS to each of these paths
      | path             |
      | /_stcore/health  |
      | /_stcore/ready   |
      | /actions         |
      | /actions/preview |
      | /actions/execute |
      | /audit           |
      | /metrics         |
      | /openapi.json    |
    Then every 405 carries one Allow header naming exactly the methods its path answered without 405
    And /_stcore/health serves GET and HEAD

  @needs-dev-key @quota-none
  Scenario: A body of exactly MAX_BODY_BYTES is read and one byte more is refused with 413, chunked or not
    When the developer previews actions padded to these sizes
      | size               | transfer | status |
      | MAX_BODY_BYTES     | length   | 200    |
      | MAX_BODY_BYTES + 1 | length   | 413    |
      | MAX_BODY_BYTES     | chunked  | 200    |
      | MAX_BODY_BYTES + 1 | chunked  | 413    |
      | 2 x MAX_BODY_BYTES | chunked  | 413    |
      | MAX_BODY_BYTES     | trickled | 200    |
      | MAX_BODY_BYTES + 1 | trickled | 413    |
    Then each padded preview is answered with the status listed

  @needs-dev-key @needs-receiver @quota-1
  Scenario: Every response carries an X-Request-ID the service minted, never one the client sent
    When a client sends requests that succeed and requests that fail, each with an X-Request-ID of its own
    Then every response carries exactly one X-Request-ID, a UUID unlike the client's and unlike every other response's
    When the developer executes an action with an X-Request-ID of its own
    Then the delivery and the execute carry the service's request id, not the client's

  @needs-dev-key @needs-admin-key @needs-receiver @needs-rate-limit-policy @quota-exhausts
  Scenario: A rate-limited execute is refused before anything is written, and counted as a breach
    Given the workspace's rate_limit_breaches_total and the receiver's deliveries so far
    When the workspace executes until an action is refused with 429
    Then no refused execute is in the audit log
    And the receiver got no delivery from a refused execute
    And rate_limit_breaches_total for the workspace rose by the number of refusals

  @needs-dev-key @quota-1
  Scenario: Metrics use the documented names and buckets, and clients cannot create label values
    When a client requests a path and uses a method that do not exist, each named at random
    And the developer executes an action
    And the metrics are read from the same replica
    Then they are in the Prometheus text format and name every documented metric
    And http_request_duration_seconds has buckets at 0.05 and 1.2, and webhook_duration_seconds at 1.2
    And the random path is counted under the unmatched route and the random method as OTHER, neither by name
