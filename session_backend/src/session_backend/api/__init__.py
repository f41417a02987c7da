"""The HTTP edge: dependencies (key check, stores), problem answers, and one router module per resource."""
