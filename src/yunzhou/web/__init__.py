"""web: see ARCHITECTURE.md; grows with the issues that need it."""
