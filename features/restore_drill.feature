@drill @needs-database
Feature: Restore drill
  As an SRE I want the latest backup restored into an ephemeral database and compared, table by
  table, with the snapshot it was taken from, so that we know our backups restore before we need one.

  The source database is only read: relay-gate backup dumps one read-only snapshot. The restore goes
  to an ephemeral database on the target's own server when the gate runs it (the reference stack), or
  on a local throwaway PostgreSQL when the target is a deployment — so no scenario needs control.

  @quota-none
  Scenario: The latest backup restores and matches its source table by table, within the RPO and RTO
    Given a backup of the target database taken now
    And recovery targets of RPO 1 hour and RTO 300 seconds
    And the latest backup is younger than the RPO target
    When the drill restores the latest backup into an ephemeral database
    Then the drill passes
    And every table's row count and digest in the restore match the manifest
    And the restore finished within the RTO target
    And no ephemeral database is left behind

  @needs-dev-key @quota-3
  Scenario: Executes made through the API survive the restore
    Given executes made through the API are in the audit log
    And a backup of the target database taken now
    When the drill restores the latest backup into an ephemeral database
    Then the drill passes
    And the restored audit log holds at least the executes made through the API

  # One scenario per damage, not an outline: each writes its own scenario record for the evidence.
  @quota-none
  Scenario: A corrupted backup fails the drill, saying why
    Given a backup of the target database taken now
    And the backup is then corrupted
    When the drill restores the latest backup into an ephemeral database
    Then the drill fails saying "checksum mismatch"
    And the drill results say FAILED with that reason
    And no ephemeral database is left behind

  @quota-none
  Scenario: A truncated backup fails the drill, saying why
    Given a backup of the target database taken now
    And the backup is then truncated
    When the drill restores the latest backup into an ephemeral database
    Then the drill fails saying "truncated dump"
    And the drill results say FAILED with that reason
    And no ephemeral database is left behind

  @quota-none
  Scenario: A missing backup fails the drill, saying why
    Given a backup of the target database taken now
    And the backup is then missing
    When the drill restores the latest backup into an ephemeral database
    Then the drill fails saying "backup missing"
    And the drill results say FAILED with that reason
    And no ephemeral database is left behind

  @quota-none
  Scenario: No backup at all fails the drill, saying why
    Given a backup of the target database taken now
    And the backup is then removed with its manifest
    When the drill restores the latest backup into an ephemeral database
    Then the drill fails saying "no backup"
    And the drill results say FAILED with that reason
    And no ephemeral database is left behind
