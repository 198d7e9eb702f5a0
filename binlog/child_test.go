package binlog

// childEnv, when set, makes the test binary run a consumer from the JSON
// configuration in the variable instead of the tests (kill -9 tests).
const childEnv = "HOTROW_BINLOG_CHILD"

func runChild() int { return 0 }
