"""The daily cleanup Cloud Function: entry points (`main`), its source bundle (`bundle`) and a
local server for running the built bundle under functions-framework (`local`)."""
