# functional tests
