"""Views: state to HTML, one function per page region."""
