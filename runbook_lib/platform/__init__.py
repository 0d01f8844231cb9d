"""The system the runbook deploys: schema, synthetic league, backfill, cleanup, function."""
