// linear.cu — the bias parts of the fully connected layer; its products run
// on gemm_strided (gemm.cu). Forward: linear_bias_rows writes the bias into
// every row of y, then gemm_strided accumulates x W^T on top, which together
// match nets.RefLinearForward. Backward: gemm_strided for dx += dy W and
// dW += dy^T x, and linear_bias_grad for db (nets.RefLinearBackward).
#include "evo_cuda.h"

// linear_bias_rows: y[r, o] = b[o] for rows r < rows, o < out. Launch:
// element-wise shape (evo_cuda.h).
#define EVO_PARAMS_linear_bias_rows(X) X(EVO_ACT* __restrict__, y) X(const float* __restrict__, b) X(int, rows) \
    X(int, out)
EVO_BODY(linear_bias_rows) {
    EVO_UNPACK(linear_bias_rows);
    EVO_GFOR(i, (long long)rows * out, g) y[i] = b[evo_mod(i, out)];
}
EVO_KERNELS(linear_bias_rows);

// linear_bias_grad: db[o] += sum over rows r of dy[r, o], summed in row
// order as nets.RefLinearBackward does. One thread per output column:
// consecutive threads read consecutive columns of a row, so every row read
// is coalesced. Launch: 1-D, 128 threads, ceil(out/128) blocks.
#define EVO_PARAMS_linear_bias_grad(X) X(const EVO_ACT* __restrict__, dy) X(float* __restrict__, db) X(int, rows) \
    X(int, out)
EVO_BODY(linear_bias_grad) {
    EVO_UNPACK(linear_bias_grad);
    const int o = g.bx * blockDim.x + threadIdx.x;
    if (o >= out) return;
    float s = db[o];
    for (int r = 0; r < rows; r++) s += dy[(long long)r * out + o];
    db[o] = s;
}
EVO_KERNELS(linear_bias_grad);
