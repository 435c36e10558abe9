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

  A 3 s window hides some wrong values: every reset is 0-3 s away, so a Retry-After of "the window
  length" or a reset sent as a delta falls inside the tolerances a short window needs. On the
  reference stack, the scenarios tagged @needs-control also start replicas of their own: with a window
  of about an hour, chosen so that it began minutes ago and ends minutes from now, every header is
  required exactly; with their Redis behind a switch the gate can cut (the shared Redis untouched), the
  in-process fallback's own bounds; and without any rate-limit setting, the documented defaults.

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

  @needs-dev-key @needs-admin-key @needs-rate-limit-policy @quota-exhausts
  Scenario: A workspace's admin key is counted against the same quota as its developer keys
    Given a workspace that has used its rate-limit quota in the current window
    When the workspace's admin key executes an action
    Then the admin key's execute is refused with 429 like the developer's, its quota used up

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
    And the fallback's X-RateLimit-Reset is epoch seconds within one window, as Redis's is
    When Redis is started again
    Then every replica's rate limiter is back on Redis within 5 seconds

  @needs-control @needs-dev-key @needs-rate-limit-policy @quota-none
  Scenario: With RATE_LIMIT_ENABLED=false no execute is refused at any rate
    Given a replica of the target running with RATE_LIMIT_ENABLED=false
    When a developer sends 3 x quota executes at once to that replica
    Then none of them is refused with 429

  @needs-control @needs-dev-key @quota-none
  Scenario: Over a long window the rate-limit headers state the exact window end, quota and wait
    Given a replica of the target with a quota of 4 executes per window of about an hour, mid-window
    When a developer sends quota + 3 executes to that replica one after another
    Then exactly the quota is admitted, and X-RateLimit-Limit and X-RateLimit-Remaining count down from it to 0
    And every answer's X-RateLimit-Reset is the end of the epoch-aligned window, in epoch seconds
    And every answer's RateLimit-Policy and RateLimit state the policy, the remaining quota and the seconds to the reset
    And every refusal asks to retry after the seconds to the reset, must not be cached and is a problem document

  @needs-control @needs-dev-key @quota-none
  Scenario: A rate-limit counter found without a TTL gets its expiry back from the next execute
    Given a replica of the target with a quota of 4 executes per window of about an hour, mid-window
    And the target's Redis can be inspected
    And the workspace's counter for that window stands at 2 without a TTL
    When a developer sends 1 execute to that replica
    Then the execute was counted on that key: X-RateLimit-Remaining is 1
    And the key expires with its window again

  @needs-control @needs-dev-key @quota-none
  Scenario: On the in-process fallback each replica limits on its own, N replicas admit at most N x quota, never a 5xx
    Given 2 replicas of the target with a quota of 4 executes per window of about an hour, whose Redis does not answer
    When a developer sends 3 x quota executes to each of those replicas at once
    Then none of them fails with a 5xx or goes unanswered
    And each of those replicas admits at most the quota on its own, and at least one execute
    And each of those replicas reports the in-process limiter

  # With REDIS_REPROBE_MAX_S=0.5 the re-probes of a 3.5 s outage come every 0.5 s at its end, so the
  # replica is back within 0.5 s of Redis answering; 1.5 s leaves a second for a noisy machine. A backoff
  # that doubles without its cap waits 3.2 s by then (0.1, 0.2, 0.4, ... 1.6, 3.2).
  @needs-control @needs-dev-key @quota-none
  Scenario: After a Redis failure a replica re-probes with its backoff capped at REDIS_REPROBE_MAX_S and returns to Redis
    Given a replica of the target whose connection to Redis can be cut, with REDIS_REPROBE_MAX_S=0.5
    And that replica's rate limiter has counted an execute on Redis
    When its Redis connection is cut for 3.5 seconds while it serves executes
    Then every execute it served during the cut succeeded, none with a 5xx
    And its rate limiter fell back to the in-process limiter during the cut
    And its rate limiter is back on Redis within 1.5 seconds of Redis answering again

  @needs-control @needs-dev-key @quota-none
  Scenario: A relay started without rate-limit settings allows 60 executes per 60 s per workspace on its in-process limiter
    Given a replica of the target started without RATE_LIMIT_ENABLED, RATE_LIMIT_EXEC_PER_MIN, RATE_LIMIT_WINDOW_S and REDIS_URL
    When a developer sends 2 executes to the replica with the defaults
    Then both are admitted under the documented default policy of 60 executes per 60 seconds
    And that replica's rate limiter is the in-process limiter
