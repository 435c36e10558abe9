@drill
Feature: Restore drill
  As an SRE I want the latest backup restored into an ephemeral database and compared, table by
  table, with the snapshot it was taken from, so that we know our backups restore before we need one.

  On the reference stack the gate takes the backups itself (relay-gate backup dumps one read-only
  snapshot of the stack's database) and restores them on the stack's own server. On a deployment the
  drill restores the deployment's own latest backup, from the folder its scheduled relay-gate backup
  writes ([backups].dir of the target config), on a throwaway PostgreSQL of the gate's: the backup
  folder and the deployment's database are only read, so no scenario needs control.

  Executes made through the API survive the restore only where the gate can take a backup after the
  executes: the reference stack. On a deployment it is not applicable. The gate cannot make the
  deployment take a backup, so its latest backup predates the executes; a backup of the gate's own
  (relay-gate backup of [database].url_env) would prove the gate's tooling again, which the reference
  stack already proves, and would read the deployment's database, which the drill otherwise never
  touches. That the executes reach the deployment's audit log is audit.feature's criterion.

  The scenarios tagged @drill-tooling damage a backup — on a deployment, a copy of its latest backup
  in a temp folder, never the original — or set a decoy beside it, and check that the drill tells it
  apart, failing saying why: they are checks of relay-gate's drill tooling, not of the target, and the
  evidence shows them apart. A changed manifest stands for a dump that does not hold what its manifest
  says (the checksum covers the dump, not the manifest): what a broken backup job produces.

  @quota-none
  Scenario: The latest backup restores and matches its source table by table, within the RPO and RTO
    Given the latest backup of the target's database
    And recovery targets of RPO 1 hour and RTO 300 seconds, or on a deployment those of its [backups]
    When the drill restores the latest backup into an ephemeral database
    Then the drill passes
    And every table's row count and digest in the restore match the manifest
    And the restore finished within the RTO target, measured from the checksum to the restored database
    And the latest backup is younger than the RPO target
    And the passing drill marks a backup of the gate's own verified, and leaves a deployment's folder as it was
    And no ephemeral database is left behind

  @quota-3
  Scenario: Executes made through the API survive the restore
    Given the gate can back up the target's database after the executes
    And executes made through the API are in the audit log
    And a backup of the target database taken now
    When the drill restores the latest backup into an ephemeral database
    Then the drill passes
    And the restored audit log holds at least the executes made through the API

  # One scenario per damage, not an outline: each writes its own scenario record for the evidence.
  @drill-tooling @quota-none
  Scenario: A corrupted backup fails the drill, saying why
    Given a copy of the target's latest backup
    And the backup is then corrupted
    When the drill restores the latest backup into an ephemeral database
    Then the drill fails saying "checksum mismatch"
    And the drill results say FAILED with that reason
    And no ephemeral database is left behind

  @drill-tooling @quota-none
  Scenario: A truncated backup fails the drill, saying why
    Given a copy of the target's latest backup
    And the backup is then truncated
    When the drill restores the latest backup into an ephemeral database
    Then the drill fails saying "truncated dump"
    And the drill results say FAILED with that reason
    And no ephemeral database is left behind

  @drill-tooling @quota-none
  Scenario: A missing backup fails the drill, saying why
    Given a copy of the target's latest backup
    And the backup is then missing
    When the drill restores the latest backup into an ephemeral database
    Then the drill fails saying "backup missing"
    And the drill results say FAILED with that reason
    And no ephemeral database is left behind

  @drill-tooling @quota-none
  Scenario: No backup at all fails the drill, saying why
    Given a copy of the target's latest backup
    And the backup is then removed with its manifest
    When the drill restores the latest backup into an ephemeral database
    Then the drill fails saying "no backup"
    And the drill results say FAILED with that reason
    And no ephemeral database is left behind

  @drill-tooling @quota-none
  Scenario: A backup whose rows differ from its manifest fails the drill, saying why
    Given a copy of the target's latest backup
    And the backup's manifest then says a table held other rows
    When the drill restores the latest backup into an ephemeral database
    Then the drill fails saying "content differs from the backup (1 chunk(s))"
    And the drill results say FAILED with that reason
    And no ephemeral database is left behind

  @drill-tooling @quota-none
  Scenario: A restored table the manifest does not list fails the drill, saying why
    Given a copy of the target's latest backup
    And the backup's manifest then leaves a table out
    When the drill restores the latest backup into an ephemeral database
    Then the drill fails saying "is in the restore but not in the manifest"
    And the drill results say FAILED with that reason
    And no ephemeral database is left behind

  @drill-tooling @quota-none
  Scenario: A table the manifest lists but the restore lacks fails the drill, saying why
    Given a copy of the target's latest backup
    And the backup's manifest then lists a table the dump does not hold
    When the drill restores the latest backup into an ephemeral database
    Then the drill fails saying "is missing from the restore"
    And the drill results say FAILED with that reason
    And no ephemeral database is left behind

  @drill-tooling @quota-none
  Scenario: Rows the backup never held fail the drill, looked up by value and not by count
    Given a copy of the target's latest backup
    And a row the backup never held is expected in the restore
    When the drill restores the latest backup into an ephemeral database
    Then the drill fails saying "0 of 1 expected"
    And the drill results say FAILED with that reason
    And no ephemeral database is left behind

  @drill-tooling @quota-none
  Scenario: A backup of another database fails the drill, saying why
    Given a copy of the target's latest backup
    And the backup's manifest then names another database
    When the drill restores the latest backup into an ephemeral database
    Then the drill fails saying "wrong database"
    And the drill results say FAILED with that reason
    And no ephemeral database is left behind

  @drill-tooling @quota-none
  Scenario: A backup older than the RPO target fails the drill, and is still restored and compared
    Given a copy of the target's latest backup
    And the backup is then older than the RPO target, its files copied anew
    When the drill restores the latest backup into an ephemeral database
    Then the drill fails with "RPO exceeded" among its failures
    And the drill results say FAILED with that reason
    And the backup was restored and compared all the same
    And no ephemeral database is left behind

  @drill-tooling @quota-none
  Scenario: The drill restores the newest backup by its timestamp, not the one written last
    Given a copy of the target's latest backup
    And an older backup beside it, its files written after it
    When the drill restores the latest backup into an ephemeral database
    Then the drill restored the newest backup by its timestamp
    And no ephemeral database is left behind

  @drill-tooling @quota-none
  Scenario: A backup that cannot be restored fails the drill, and its ephemeral database is dropped
    Given a copy of the target's latest backup
    And the backup is then cut short, its manifest rewritten to match
    When the drill restores the latest backup into an ephemeral database
    Then the drill fails saying "pg_restore failed"
    And the drill results say FAILED with that reason
    And the restore ran as one transaction that stops at the first error
    And no ephemeral database is left behind
