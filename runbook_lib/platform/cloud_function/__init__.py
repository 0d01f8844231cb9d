"""The daily cleanup Cloud Function: entry points (`main`), its own configuration and the
environment variables that carry it (`config`), its source bundle (`bundle`) and a local server
for running the built bundle under functions-framework (`local`), plus what the deployment plan
needs about it: gcloud bound to one project (`gcloud`), drift between a described resource and
the plan (`drift`). What looks secret, and its masking, is runbook_lib/secrets.py."""
