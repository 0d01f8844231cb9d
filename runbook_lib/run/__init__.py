"""The runbook machinery: params, phases, runner, manifest and audit chain, reports."""
