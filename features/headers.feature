@headers
Feature: Security headers on every response
  As a security reviewer I want every response of the API — success, refusal, client error, rate
  limit and crash alike — to carry the configured security headers exactly once, with their
  configured values, and to name no server implementation, so that no code path ships without them.
  The header policy itself is analysed (CSP, HSTS) and graded offline, Observatory style
  (the rubric is in gate/oracles/headercheck.py).

  How each status is provoked:
    200 GET /_stcore/health · 401 GET /actions without a key · 404 GET an unknown path ·
    405 DELETE /actions · 413 POST 1 MiB to /actions/preview (over the body limit; no key needed,
    the limit is enforced before authentication) · 403 GET /audit with a developer key ·
    422 POST malformed JSON to /actions/preview with a developer key (without a key a target may
    rightly answer 401 first) · 429 one workspace goes over its execute quota · 500 GET the
    target's fault path. Beyond one recipe per status, the other scenarios vary what those hold fixed —
    every method on every documented path and an unknown one, CORS preflights, compressed responses,
    chunked uploads, bodies in other encodings, the other profile — and judge whatever status comes back.

  @quota-none
  Scenario: Responses that need nothing but the URL carry the configured security headers
    When a client without a key provokes 200, 401, 404, 405 and 413 responses
    Then every provoked response carries each configured security header exactly once with its configured value
    And no provoked response names the server implementation

  @needs-dev-key @quota-1
  Scenario: Refusals of a developer's requests carry the configured security headers
    When a developer provokes 403 and 422 responses
    Then every provoked response carries each configured security header exactly once with its configured value
    And no provoked response names the server implementation

  @needs-dev-key @needs-rate-limit-policy @quota-exhausts
  Scenario: A rate-limited execute carries the configured security headers
    When a workspace goes over its execute quota
    Then every provoked response carries each configured security header exactly once with its configured value
    And no provoked response names the server implementation

  @needs-fault-route @quota-none
  Scenario: An unhandled server error carries the configured security headers
    When a client requests the path that fails with an unhandled error
    Then every provoked response carries each configured security header exactly once with its configured value
    And no provoked response names the server implementation

  @quota-none
  Scenario: The security header policy is sound and grades at least A
    When the security headers of a healthy response are analysed
    Then Strict-Transport-Security covers subdomains for at least 180 days
    And the Content-Security-Policy allows no inline script, no eval and no script from any host
    And the security headers grade at least A

  @quota-none
  Scenario: Every method on every documented path and on an unknown one carries the configured security headers
    When a client without a key sends every method to every documented path and to an unknown one
    Then every provoked response carries each configured security header exactly once with its configured value
    And no provoked response names the server implementation

  @quota-none
  Scenario: CORS preflights, compressed responses and chunked uploads carry the configured security headers
    When a client without a key sends CORS preflights, asks for compressed responses and uploads chunked bodies
    Then every provoked response carries each configured security header exactly once with its configured value
    And no provoked response names the server implementation

  @needs-dev-key @quota-none
  Scenario: A developer's requests carry the configured security headers whatever the method and the body's encoding
    When a developer sends every method to the authenticated paths and bodies in other encodings
    Then every provoked response carries each configured security header exactly once with its configured value
    And no provoked response names the server implementation

  @needs-control @quota-none
  Scenario: A relay running the seed profile sends the seed's documented header values
    Given a replica of the target running with SECURITY_HEADERS_PROFILE=seed
    When a client without a key provokes 200, 401, 404, 405 and 413 responses from that replica
    Then every provoked response carries each header of the seed profile exactly once with its documented value
    And no provoked response names the server implementation
