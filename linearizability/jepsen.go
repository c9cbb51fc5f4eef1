package linearizability

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/anishathalye/porcupine"
)

// RegisterKind names an operation on Jepsen's single register.
type RegisterKind string

// The register operations of a Jepsen log.
const (
	RegisterRead  RegisterKind = "read"
	RegisterWrite RegisterKind = "write"
	RegisterCAS   RegisterKind = "cas"
)

// RegisterOp is one operation of a Jepsen register history. Times are
// event numbers (the line order of the log), which is all Jepsen's log
// orders by.
type RegisterOp struct {
	Process int
	Kind    RegisterKind
	// Value is the value written, or read (when Nil is false).
	Value int
	// Nil reports a read of the initial, empty register.
	Nil bool
	// From and To are a cas's expected and new values.
	From, To int
	// Outcome: ok (a cas that succeeded), fail (did not happen: a cas whose
	// compare failed, a rejected request), unknown (:info, a timed-out read,
	// or no completion before the log ends).
	Outcome      Outcome
	Call, Return int64
}

var jepsenLine = regexp.MustCompile(`^INFO\s+jepsen\.util\s+-\s+(\d+)\s+:(invoke|ok|fail|info)\s+:(read|write|cas)\s+(.*?)\s*$`)
var jepsenPair = regexp.MustCompile(`^\[(-?\d+)\s+(-?\d+)\]$`)

// ReadJepsen parses a Jepsen etcd register log ("INFO  jepsen.util -
// <process>\t:<type>\t:<f>\t<value>" lines; other lines are ignored). A
// completion that matches no pending invocation of its process, or a value
// that does not parse, is an error wrapping ErrMalformed with the line
// number. Operations still pending at the end are unknown.
func ReadJepsen(r io.Reader) ([]RegisterOp, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	var ops []RegisterOp
	pending := map[int]int{} // process -> index in ops
	var event int64
	line := 0
	for sc.Scan() {
		line++
		m := jepsenLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		event++
		proc, err := strconv.Atoi(m[1])
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: process %q: %v", ErrMalformed, line, m[1], err)
		}
		kind, arg := RegisterKind(m[3]), m[4]
		if m[2] == "invoke" {
			if _, busy := pending[proc]; busy {
				return nil, fmt.Errorf("%w: line %d: process %d invokes while an operation is pending", ErrMalformed, line, proc)
			}
			op := RegisterOp{Process: proc, Kind: kind, Call: event, Outcome: OutcomeUnknown}
			switch kind {
			case RegisterWrite:
				if op.Value, err = strconv.Atoi(arg); err != nil {
					return nil, fmt.Errorf("%w: line %d: write value %q", ErrMalformed, line, arg)
				}
			case RegisterCAS:
				p := jepsenPair.FindStringSubmatch(arg)
				if p == nil {
					return nil, fmt.Errorf("%w: line %d: cas argument %q", ErrMalformed, line, arg)
				}
				op.From, _ = strconv.Atoi(p[1])
				op.To, _ = strconv.Atoi(p[2])
			}
			pending[proc] = len(ops)
			ops = append(ops, op)
			continue
		}
		i, ok := pending[proc]
		if !ok || ops[i].Kind != kind {
			return nil, fmt.Errorf("%w: line %d: process %d completes %s without invoking it", ErrMalformed, line, proc, kind)
		}
		delete(pending, proc)
		op := &ops[i]
		op.Return = event
		switch m[2] {
		case "ok":
			op.Outcome = OutcomeOK
			if kind == RegisterRead {
				if arg == "nil" {
					op.Nil = true
				} else if op.Value, err = strconv.Atoi(arg); err != nil {
					return nil, fmt.Errorf("%w: line %d: read value %q", ErrMalformed, line, arg)
				}
			}
		case "fail":
			op.Outcome = OutcomeFail
			if kind == RegisterRead {
				op.Outcome = OutcomeUnknown // a timed-out read: its result is unknown
			}
		case "info":
			op.Outcome = OutcomeUnknown
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: line %d: %v", ErrMalformed, line+1, err)
	}
	for _, i := range pending {
		ops[i].Return = event + 1
	}
	return ops, nil
}

// regNil is the register state before any write.
const regNil = math.MinInt64

func registerStep(state int64, op *RegisterOp) (bool, int64) {
	known := op.Outcome == OutcomeOK
	switch op.Kind {
	case RegisterRead:
		if op.Nil {
			return state == regNil, state
		}
		return state == int64(op.Value), state
	case RegisterWrite:
		return true, int64(op.Value)
	case RegisterCAS:
		if state != int64(op.From) {
			return !known, state
		}
		return true, int64(op.To)
	}
	panic(fmt.Sprintf("linearizability: register op of unknown kind %q", op.Kind))
}

// RegisterModel returns the Porcupine model of Jepsen's register. Inputs
// and outputs are both *RegisterOp; unknown writes and cas must have an
// infinite (math.MaxInt64) return, as CheckRegister gives them.
func RegisterModel() porcupine.Model {
	return porcupine.Model{
		Init: func() any { return int64(regNil) },
		Step: func(state, input, _ any) (bool, any) {
			return registerStep(state.(int64), input.(*RegisterOp))
		},
		DescribeOperation: func(input, _ any) string { return describeRegister(input.(*RegisterOp)) },
		DescribeState: func(state any) string {
			if state.(int64) == regNil {
				return "nil"
			}
			return strconv.FormatInt(state.(int64), 10)
		},
	}
}

func describeRegister(op *RegisterOp) string {
	var s string
	switch op.Kind {
	case RegisterRead:
		s = "read()"
		if op.Outcome == OutcomeOK {
			if op.Nil {
				s += " -> nil"
			} else {
				s += fmt.Sprintf(" -> %d", op.Value)
			}
		}
	case RegisterWrite:
		s = fmt.Sprintf("write(%d)", op.Value)
	case RegisterCAS:
		s = fmt.Sprintf("cas(%d, %d)", op.From, op.To)
	}
	if op.Outcome != OutcomeOK {
		s += " -> " + string(op.Outcome)
	}
	return s
}

// CheckRegister checks a Jepsen register history with Porcupine. Failed
// operations did not happen and are left out, as are unknown reads; unknown
// writes and cas may take effect any time after their call, or never.
func CheckRegister(ops []RegisterOp, opt Options) (Result, error) {
	start := time.Now()
	if err := opt.Validate(); err != nil {
		return Result{}, err
	}
	var procs []int
	for i := range ops {
		procs = append(procs, ops[i].Process)
	}
	slices.Sort(procs)
	procs = slices.Compact(procs)
	var hist []porcupine.Operation
	for i := range ops {
		op := &ops[i]
		if op.Outcome == OutcomeFail || op.Outcome == OutcomeUnknown && op.Kind == RegisterRead {
			continue
		}
		ret := op.Return
		if op.Outcome == OutcomeUnknown {
			ret = math.MaxInt64
		}
		client, _ := slices.BinarySearch(procs, op.Process)
		hist = append(hist, porcupine.Operation{ClientId: client, Input: op, Output: op, Call: op.Call, Return: ret})
	}
	res := Result{Verdict: VerdictOK, Operations: len(ops), Linearized: len(hist), Partitions: 1}
	model := RegisterModel()
	r, steps := search(model, hist, opt.budget())
	res.Steps = steps
	switch r {
	case porcupine.Illegal:
		res.Verdict = VerdictIllegal
		res.Reason = fmt.Sprintf("the register history of %d operations has no linearization", len(hist))
	case porcupine.Unknown:
		res.Verdict = VerdictInconclusive
		res.Reason = fmt.Sprintf("budget of %d steps exhausted (%d operations)", opt.budget(), len(hist))
	}
	if res.Verdict != VerdictOK && opt.VisualizePath != "" {
		res.visualize(model, hist, opt)
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// CheckJepsen reads the Jepsen register log at path and checks it with the
// default options.
func CheckJepsen(path string) (Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return Result{}, fmt.Errorf("linearizability: %w", err)
	}
	defer f.Close()
	ops, err := ReadJepsen(f)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", path, err)
	}
	return CheckRegister(ops, Options{})
}
