// data.cu — batch assembly on the device from a resident uint8 dataset:
// gather the batch's images, apply the training augmentations in
// data.Augment's order (random crop with zero padding, horizontal flip,
// then normalisation, then cutout) and normalise exactly as data.Batch
// does, (float(p)/255 - mean[c]) / std[c] in float32, so an image without
// augmentation has the same bits on the GPU as on the CPU.
//
// Randomness is counter-based so every thread can recompute its image's
// draws without shared state: draw k of batch position b under a step's
// seed is
//     u = fmix64(seed + (8*b + k + 1) * 0x9E3779B97F4A7C15)
// (fmix64 = SplitMix64's output function: Steele, Lea and Flood, "Fast
// Splittable Pseudorandom Number Generators", OOPSLA 2014), and a value in
// [0, m) is ((u >> 32) * m) >> 32. Draws k = 0..4 are the crop row shift,
// crop column shift (each in [-pad, pad]), flip (m = 2, 1 flips), cutout
// centre row and cutout centre column. cuda.AugmentView is the same
// computation in Go.
#include "evo_cuda.h"

static __device__ __forceinline__ unsigned long long evo_fmix64(unsigned long long z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static __device__ __forceinline__ int evo_draw(unsigned long long seed, long long b, int k, int m) {
    const unsigned long long u = evo_fmix64(seed + (unsigned long long)(8 * b + k + 1) * 0x9E3779B97F4A7C15ULL);
    return (int)(((u >> 32) * (unsigned long long)m) >> 32);
}

// evo_gather_batch is gather_batch's loop, shared with gather_batch_sched
// (sched.cu), which finds its indices and seed in device memory.
static __device__ __forceinline__ void evo_gather_batch(const unsigned char* __restrict__ pixels,
                                                        const unsigned char* __restrict__ labels,
                                                        const int* __restrict__ idx, int nimg, int C, int H, int W,
                                                        const float* __restrict__ mean,
                                                        const float* __restrict__ stdev, int padCrop, int flip,
                                                        int cutout, long long seed, EVO_ACT* __restrict__ x,
                                                        int* __restrict__ y, const evo_grid& g) {
    const unsigned long long s = (unsigned long long)seed;
    const long long plane = (long long)H * W, img = C * plane;
    EVO_GFOR(e, (long long)nimg * img, g) {
        const int q = evo_div(e, W), j = (int)(e - (long long)q * W);
        const int i = q % H, r = q / H, c = r % C;
        const long long b = r / C;
        const long long src = (long long)idx[b] * img;
        if (c == 0 && i == 0 && j == 0) y[b] = labels[idx[b]];
        int si = i, sj = j;
        if (padCrop > 0) {
            si += evo_draw(s, b, 0, 2 * padCrop + 1) - padCrop;
            sj += evo_draw(s, b, 1, 2 * padCrop + 1) - padCrop;
        }
        if (flip && evo_draw(s, b, 2, 2) == 1) sj = W - 1 - j + (sj - j);
        const float p = (si >= 0 && si < H && sj >= 0 && sj < W) ? (float)pixels[src + c * plane + si * W + sj] : 0.0f;
        float v = (p / 255.0f - mean[c]) / stdev[c];
        if (cutout > 0) {
            const int cy = evo_draw(s, b, 3, H), cx = evo_draw(s, b, 4, W);
            const int y0 = evo_imax(cy - cutout / 2, 0), y1 = evo_imin(cy - cutout / 2 + cutout, H);
            const int x0 = evo_imax(cx - cutout / 2, 0), x1 = evo_imin(cx - cutout / 2 + cutout, W);
            if (i >= y0 && i < y1 && j >= x0 && j < x1) v = 0.0f;
        }
        x[e] = v;
    }
}

// gather_batch: for batch position b < nimg, image idx[b] of the dataset
// (pixels [images][C][H][W] bytes, labels [images] bytes) becomes x[b]
// ([C][H][W] float32, normalised and augmented) and y[b] = its label.
// padCrop > 0 turns on the random crop, flip != 0 the flip, cutout > 0 the
// cutout square of that side (centre uniform, clipped at the borders). The
// un-augmented path matches data.(*Dataset).Batch bit for bit. Launch:
// element-wise shape over nimg*C*H*W. It has a grouped variant
// gather_batch_grouped (evo_cuda.h, EVO_KERNELS).
#define EVO_PARAMS_gather_batch(X) X(const unsigned char* __restrict__, pixels) \
    X(const unsigned char* __restrict__, labels) X(const int* __restrict__, idx) X(int, nimg) X(int, C) \
    X(int, H) X(int, W) X(const float* __restrict__, mean) X(const float* __restrict__, stdev) X(int, padCrop) \
    X(int, flip) X(int, cutout) X(long long, seed) X(EVO_ACT* __restrict__, x) X(int* __restrict__, y)
EVO_BODY(gather_batch) {
    EVO_UNPACK(gather_batch);
    evo_gather_batch(pixels, labels, idx, nimg, C, H, W, mean, stdev, padCrop, flip, cutout, seed, x, y, g);
}
EVO_KERNELS(gather_batch);

// The step-scheduled twin, for steps replayed as a CUDA graph (sched.cu).
// gather_batch_sched: gather_batch for step k = *counter: the
// batch's image indices are idx + offsets[k] (idx holds every step's
// indices back to back, offsets[k] where step k's nimg indices start) and
// the augmentation seed is seed + k. Launch: element-wise shape over
// nimg*C*H*W.
#define EVO_PARAMS_gather_batch_sched(X) X(const unsigned char* __restrict__, pixels) \
    X(const unsigned char* __restrict__, labels) X(const int* __restrict__, idx) \
    X(const int* __restrict__, offsets) X(const int* __restrict__, counter) X(int, nimg) X(int, C) X(int, H) \
    X(int, W) X(const float* __restrict__, mean) X(const float* __restrict__, stdev) X(int, padCrop) X(int, flip) \
    X(int, cutout) X(long long, seed) X(EVO_ACT* __restrict__, x) X(int* __restrict__, y)
EVO_BODY(gather_batch_sched) {
    EVO_UNPACK(gather_batch_sched);
    const int k = *counter;
    evo_gather_batch(pixels, labels, idx + offsets[k], nimg, C, H, W, mean, stdev, padCrop, flip, cutout, seed + k,
                     x, y, g);
}
EVO_KERNELS(gather_batch_sched);
