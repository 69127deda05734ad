"""Sign-in, second factor, password reset, API tokens and account set-up."""
