"""The self-serve portal: customers manage their own and their organizations' keys."""
