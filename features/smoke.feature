@smoke
Feature: Post-deploy smoke
  The seed's production smoke: the set to run right after a deploy, against the reference stack or
  staging. Health, list, preview then execute, and the audit trail, in under ten seconds.

  @needs-dev-key @needs-admin-key @quota-1
  Scenario: The service is healthy, lists its actions, executes a previewed action and audits it
    Given the service reports healthy
    When a developer lists the actions
    Then the catalogue lists at least one action with a parameter schema
    When the developer previews an action and executes the preview
    Then the execute succeeds with a delivered webhook
    And an admin finds the execute in the audit log with status ok
    And the smoke took at most 10 seconds
