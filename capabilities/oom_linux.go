package capabilities

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// OOMScoreAdjOf reads the oom_score_adj of pid (0 = this process).
func OOMScoreAdjOf(pid int) (int, error) {
	path := "/proc/self/oom_score_adj"
	if pid != 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/oom_score_adj"
	}
	b, err := readProcFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// SetOOMScoreAdj writes v as this process's oom_score_adj and reads it back. Without
// CAP_SYS_RESOURCE the kernel refuses (EACCES) a value below the process's minimum, the
// lowest value a privileged process set for it or its ancestors.
func SetOOMScoreAdj(v int) error {
	if err := writeProcFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(v))); err != nil {
		return err
	}
	got, err := OOMScoreAdjOf(0)
	if err != nil {
		return fmt.Errorf("reading it back: %w", err)
	}
	if got != v {
		return fmt.Errorf("wrote %d but read back %d", v, got)
	}
	return nil
}

// OOMResult is the outcome of asking for an oom_score_adj.
type OOMResult struct {
	Original int   // the score before tender touched it
	Asked    int   // the score tender asked for
	Got      int   // the score it has now
	Err      error // why Got is not Asked, if it is not
}

// Refused reports whether the kernel refused the score for lack of privilege, as opposed to a
// missing or read-only /proc.
func (r OOMResult) Refused() bool {
	return errors.Is(r.Err, unix.EACCES) || errors.Is(r.Err, unix.EPERM)
}

// LowerOOMScoreAdj asks for target. Where the kernel refuses it, it takes the lowest score
// that the kernel accepts between target and the original, found by bisection (acceptance is
// monotonic: every value at or above the minimum is accepted), instead of giving up.
func LowerOOMScoreAdj(target int) OOMResult {
	orig, err := OOMScoreAdjOf(0)
	if err != nil {
		return OOMResult{Original: orig, Asked: target, Got: orig, Err: err}
	}
	res := OOMResult{Original: orig, Asked: target, Got: target}
	if res.Err = SetOOMScoreAdj(target); res.Err == nil || target >= orig {
		if res.Err != nil {
			res.Got = orig
		}
		return res
	}
	res.Got = lowestAccepted(target, orig)
	return res
}

// lowestAccepted finds the lowest value in (refused, accepted] that the kernel accepts, and
// leaves it set; accepted is the score in force.
func lowestAccepted(refused, accepted int) int {
	// Most often the score a process starts with is the lowest it may set: the container runtime
	// set it with the privilege the process lacks, and that also set the kernel's floor for it
	// (oom_score_adj_min). One write tells, before a bisection of ten.
	if accepted-refused > 1 {
		if SetOOMScoreAdj(accepted-1) != nil {
			return accepted
		}
		accepted--
	}
	for accepted-refused > 1 {
		mid := refused + (accepted-refused)/2
		if SetOOMScoreAdj(mid) == nil {
			accepted = mid
		} else {
			refused = mid
		}
	}
	// The last write that succeeded was `accepted`; make sure it is the one in force.
	_ = SetOOMScoreAdj(accepted)
	return accepted
}

// LowestOOMScoreAdj finds the lowest oom_score_adj this process may set, then puts its score
// back. It writes to /proc/self/oom_score_adj, so only `tender probe` calls it.
func LowestOOMScoreAdj() (int, error) {
	orig, err := OOMScoreAdjOf(0)
	if err != nil {
		return 0, err
	}
	low := -1000
	if SetOOMScoreAdj(low) != nil {
		low = lowestAccepted(-1000, orig)
	}
	return low, SetOOMScoreAdj(orig)
}

// OOMAdvice tells the user what a partial OOM protection means and how to do better, given
// the score tender got and the score its apps start with.
func OOMAdvice(got, apps int) string {
	if apps > got {
		return fmt.Sprintf("the apps (%d) are still the OOM killer's choice before tender (%d); "+
			"for full protection run the container with --cap-add SYS_RESOURCE", apps, got)
	}
	return fmt.Sprintf("tender (%d) is no safer from the OOM killer than its apps (%d); run the container with "+
		"--cap-add SYS_RESOURCE, or set TENDER_APP_OOM_SCORE_ADJ=+500 so that it prefers the apps", got, apps)
}
