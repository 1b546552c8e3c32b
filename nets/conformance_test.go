package nets_test

import (
	"testing"

	"github.com/naturecast/evosearch/nets"
	"github.com/naturecast/evosearch/nets/backendtest"
)

func TestConformanceCPU(t *testing.T) { backendtest.Run(t, nets.CPU{}, backendtest.Default) }

// TestConformanceRefWorkers: the reference itself gives the same values
// whatever the number of workers (it splits only over independent outputs).
func TestConformanceRefWorkers(t *testing.T) {
	backendtest.Run(t, oneWorker{}, backendtest.Tolerance{})
}

type oneWorker struct{ nets.Ref }

func (oneWorker) Forward(op nets.OpKind, a *nets.Args) {
	a.Workers = 1
	nets.Ref{}.Forward(op, a)
}

func (oneWorker) Backward(op nets.OpKind, a *nets.Args) {
	a.Workers = 1
	nets.Ref{}.Backward(op, a)
}

func TestConformanceTrainingCPU(t *testing.T) {
	backendtest.RunTraining(t, nets.CPU{}, backendtest.Default)
}
