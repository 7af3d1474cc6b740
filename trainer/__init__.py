"""The reference trainer: writes progress.json the way the sidecar likes it (to come)."""
