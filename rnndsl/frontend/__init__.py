"""The spec language: YAML text -> located tree -> parsed equations -> checked, typed IR."""
