@rate_limit
Feature: Per-workspace rate limiting
  As a platform owner I want each workspace capped on executes per fixed window, one quota shared
  by every replica, so that one tenant cannot starve the others; and I want a Redis outage neither
  to stall nor to block the API.

  The quota and window come from the target (reference stack: 10 executes per 3 s window per
  workspace). A fixed window must not make a burst flaky: every burst first reads X-RateLimit-Reset
  and, when the window is nearly over (or, where a full quota is needed, already in use), starts at
  the beginning of the next one. A burst that a replica partly decided on its in-process fallback
  (a Redis call timed out on a loaded machine) is recorded and sent once more in a fresh window.

  @needs-dev-key @needs-rate-limit-policy @quota-exhausts
  Scenario: A burst past the quota is refused with 429 and rate-limit guidance (seed smoke)
    Given a workspace with time left in the current rate-limit window
    When the workspace sends a burst of quota + 5 executes
    Then at least one execute of the burst is refused with 429
    And every refused execute carries Retry-After and the X-RateLimit headers

  @needs-dev-key @needs-rate-limit-policy @quota-fresh
  Scenario: Exactly the quota is admitted in one window, and the rate-limit headers count down and agree
    Given a workspace with its full rate-limit quota at the start of a window
    When the workspace sends a burst of quota + 5 executes
    Then exactly the quota of executes is admitted, all in one window
    And X-RateLimit-Remaining counts down to 0 and never goes below
    And Retry-After on every refusal is at least 1 second and agrees with X-RateLimit-Reset
    And every refusal is a problem document that must not be cached

  @needs-dev-key @needs-rate-limit-policy @quota-exhausts
  Scenario: The IETF RateLimit and RateLimit-Policy fields agree with the X-RateLimit headers
    Given a workspace with time left in the current rate-limit window
    When the workspace sends a burst of quota + 5 executes
    Then the RateLimit and RateLimit-Policy fields agree with the X-RateLimit headers

  @needs-dev-key @needs-rate-limit-policy @quota-rollover
  Scenario: The quota comes back when the window rolls over
    Given the rate-limit window is short enough to wait for
    And a workspace that has used its rate-limit quota in the current window
    When the rate-limit window rolls over
    Then the workspace's next execute is admitted with a fresh quota

  @needs-second-workspace @needs-rate-limit-policy @quota-fresh-two
  Scenario: One workspace using up its quota leaves another workspace's quota intact
    Given two workspaces with their full rate-limit quota at the start of a window
    When the first workspace uses up its quota
    Then the second workspace's quota is intact

  @needs-dev-key @needs-rate-limit-policy @quota-exhausts
  Scenario: The client cannot choose the workspace an execute is counted against
    Given a workspace that has used its rate-limit quota in the current window
    When it retries naming another workspace in an X-Workspace-ID header, a query parameter or a body field
    Then every retry is refused and counted against the workspace's own quota

  @needs-dev-key @needs-rate-limit-policy @quota-6
  Scenario: Rate-limit keys in Redis name only configured workspaces and always expire
    Given the target's Redis can be inspected
    When a workspace sends executes naming other workspaces in X-Workspace-ID headers
    Then every rate-limit key in Redis is rl:<configured workspace>:<current window index> with a TTL

  @needs-dev-key @needs-rate-limit-policy @quota-fresh
  Scenario: Parallel executes spread over every replica admit exactly the quota
    Given a workspace with its full rate-limit quota at the start of a window
    When the workspace sends 3 x quota executes at once, spread over every replica
    Then exactly the quota of executes is admitted in that window across the replicas

  # Redis calls are bounded by the relay's REDIS_CONNECT_TIMEOUT_MS + REDIS_SOCKET_TIMEOUT_MS
  # (250 ms + 250 ms on the reference stack): a request may spend 0.5 s on a hung Redis, plus its own
  # work (audit write, signed webhook delivery). 2 s is four times that bound, margin for a noisy
  # 2-core machine, and a fifth of the 10 s a Redis client without timeouts makes a request wait.
  @needs-control @needs-dev-key @quota-fresh
  Scenario: A hung Redis does not stall executes, and the limiter returns to Redis once it answers
    Given the rate limiter of every replica is on Redis
    When Redis hangs and executes are sent to every replica
    Then every execute succeeds within 2 seconds, none with a 5xx
    And every replica's rate limiter has fallen back to the in-process limiter
    When Redis answers again
    Then every replica's rate limiter is back on Redis within 5 seconds

  @needs-control @needs-dev-key @quota-fresh
  Scenario: With Redis killed executes keep succeeding on the in-process fallback, and Redis takes over again
    Given the rate limiter of every replica is on Redis
    When Redis is killed and executes are sent to every replica
    Then every execute succeeds, none with a 5xx
    And every replica's rate limiter has fallen back to the in-process limiter
    When Redis is started again
    Then every replica's rate limiter is back on Redis within 5 seconds

  @needs-control @needs-dev-key @needs-rate-limit-policy @quota-none
  Scenario: With RATE_LIMIT_ENABLED=false no execute is refused at any rate
    Given a replica of the target running with RATE_LIMIT_ENABLED=false
    When a developer sends 3 x quota executes at once to that replica
    Then none of them is refused with 429
