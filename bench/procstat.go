package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of /proc/PID/stat times; 100 on every
// Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// processCPU returns the user+system CPU time that process pid (all its
// threads) has used so far, from /proc/PID/stat.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

// parseStatCPU extracts utime+stime from the text of /proc/PID/stat. The
// command name (field 2) may contain spaces and parentheses, so fields are
// counted from the last ')'.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc stat %q", stat)
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed /proc stat %q", stat)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed /proc stat %q", stat)
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// cpuMeter measures the CPU share of a process over an interval. A zero
// pid, or a process that cannot be read, measures nothing (n/a).
type cpuMeter struct {
	pid   int
	start time.Duration
	ok    bool
}

func startCPU(pid int) cpuMeter {
	if pid <= 0 {
		return cpuMeter{}
	}
	t, err := processCPU(pid)
	return cpuMeter{pid: pid, start: t, ok: err == nil}
}

// used returns the CPU time used since start; false when not measured.
func (m cpuMeter) used() (time.Duration, bool) {
	if !m.ok {
		return 0, false
	}
	t, err := processCPU(m.pid)
	if err != nil {
		return 0, false
	}
	return t - m.start, true
}

// percent returns the CPU used since start as a percentage of one core
// over wall, or -1 when not measured.
func (m cpuMeter) percent(wall time.Duration) float64 {
	t, ok := m.used()
	if !ok || wall <= 0 {
		return -1
	}
	return 100 * float64(t) / float64(wall)
}
