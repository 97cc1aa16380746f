// Views share storage and only change (shape, strides, offset); copies happen only where documented.
#include "helpers.h"

using namespace hctest;

TEST_CASE("views share storage and see writes") {
  Tensor base = arange(0.0, 12.0, 1.0, {.dtype = DType::Float32});
  Tensor m = base.view({3, 4});
  CHECK(m.storage() == base.storage());
  CHECK(m.strides() == Strides{4, 1});
  m.select(0, 1).fill_(-1.0);
  CHECK(close(base, {12}, {0, 1, 2, 3, -1, -1, -1, -1, 8, 9, 10, 11}));
}

TEST_CASE("permute and transpose swap strides") {
  Tensor x = arange(24).reshape({2, 3, 4});
  Tensor p = x.permute({2, 0, 1});
  CHECK(p.shape() == Shape{4, 2, 3});
  CHECK(p.strides() == Strides{1, 12, 4});
  CHECK(p.storage() == x.storage());
  // p[k,i,j] = x[i,j,k] = 12i + 4j + k
  CHECK(close(p.select(0, 3), {2, 3}, {3, 7, 11, 15, 19, 23}));
  CHECK(close(x.transpose(-1, 0).select(0, 1), {3, 2}, {1, 13, 5, 17, 9, 21}));
}

TEST_CASE("narrow, slice and select move the offset") {
  Tensor x = arange(20).reshape({4, 5});
  Tensor n = x.narrow(1, 1, 3);
  CHECK(n.offset() == 1);
  CHECK(close(n, {4, 3}, {1, 2, 3, 6, 7, 8, 11, 12, 13, 16, 17, 18}));
  Tensor s = x.slice(0, 1, 4, 2);  // rows 1 and 3
  CHECK(s.strides() == Strides{10, 1});
  CHECK(close(s, {2, 5}, {5, 6, 7, 8, 9, 15, 16, 17, 18, 19}));
  CHECK(close(x.slice(1, -2, 100), {4, 2}, {3, 4, 8, 9, 13, 14, 18, 19}));  // clamped like Python
  CHECK(x.slice(1, 4, 2).numel() == 0);
  CHECK(close(x.narrow(0, -1, 1), {1, 5}, {15, 16, 17, 18, 19}));
}

TEST_CASE("expand repeats with stride 0, squeeze and unsqueeze") {
  Tensor col = tensor({1, 2, 3}, {3, 1});
  Tensor e = col.expand({2, 3, 4});
  CHECK(e.strides() == Strides{0, 1, 0});
  CHECK(close(e.select(0, 1).select(0, 2), {4}, {3, 3, 3, 3}));
  CHECK(col.expand({-1, 2}).shape() == Shape{3, 2});
  CHECK(col.squeeze(1).shape() == Shape{3});
  CHECK(col.squeeze(0).shape() == Shape{3, 1});  // size 3: unchanged, as in PyTorch
  CHECK(col.unsqueeze(0).shape() == Shape{1, 3, 1});
  CHECK(col.unsqueeze(-1).shape() == Shape{3, 1, 1});
  CHECK(ones({1, 2, 1}).squeeze().shape() == Shape{2});
  CHECK(ones({2, 3, 4}).flatten(1).shape() == Shape{2, 12});
}

TEST_CASE("reshape views when it can and copies when it must") {
  Tensor x = arange(12).reshape({3, 4});
  Tensor flat = x.reshape({-1});
  CHECK(flat.storage() == x.storage());
  Tensor t = x.t();
  CHECK_THROWS_WITH_AS(t.view({12}),
                       "view: shape [4,3] with strides [1,4] cannot be viewed as [12] without a copy; use reshape()",
                       ShapeError);
  Tensor r = t.reshape({12});  // a transposed matrix cannot be flattened in place: copy
  CHECK(r.storage() != x.storage());
  CHECK(close(r, {12}, {0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}));
  // Splitting a dim of a transposed tensor is still a view.
  Tensor split = t.reshape({2, 2, 3});
  CHECK(split.storage() == x.storage());
  CHECK(close(split, {2, 2, 3}, {0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}));
  CHECK(x.slice(1, 0, 4, 2).reshape({6}).storage() == x.storage());  // columns 0, 2: evenly spaced, a view
  CHECK(x.slice(1, 1, 4).reshape({9}).storage() != x.storage());       // columns 1..3: a gap, a copy
}

TEST_CASE("contiguous copies only non-contiguous tensors") {
  Tensor x = arange(6).reshape({2, 3});
  CHECK(x.contiguous().same(x));
  Tensor c = x.t().contiguous();
  CHECK(c.is_contiguous());
  CHECK(c.storage() != x.storage());
  CHECK(close(c, {3, 2}, {0, 3, 1, 4, 2, 5}));
  Tensor cl = x.clone();
  CHECK(cl.storage() != x.storage());
}
