"""The third-party instrumentations apps already run, run as their users run them beside spendwatch."""
