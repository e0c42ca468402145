/**
 * The operation codes shared by the TypeScript side of the native backend (native.ts) and the C++
 * addon (src/native/addon.cc `enum Act`, src/native/elementwise.cc `enum Unary`, `enum Binary`,
 * `enum Reduce`): the one table on the TypeScript side. test/op-codes.test.ts reads the C++ enums and
 * fails when they and this table disagree, name by name. Keys are the C++ enumerators without `k`.
 */

/** `enum Unary` of elementwise.cc: the code of each unary kernel. */
export const UNARY_OPS = {
  Relu: 0, LeakyRelu: 1, Square: 2, Sqrt: 3, Rsqrt: 4, Neg: 5, Exp: 6, Log: 7,
  Abs: 8, Tanh: 9, Sigmoid: 10, Elu: 11, Relu6: 12, Reciprocal: 13, Step: 14, Floor: 15,
} as const;

/** `enum Binary` of elementwise.cc: arithmetic (0-7) and comparisons (16-21). */
export const BINARY_OPS = {
  Add: 0, Sub: 1, Mul: 2, Div: 3, Max: 4, Min: 5, SqDiff: 6, Pow: 7,
  Greater: 16, GreaterEqual: 17, Less: 18, LessEqual: 19, Equal: 20, NotEqual: 21,
} as const;

/** `enum Reduce` of elementwise.cc. */
export const REDUCE_OPS = { Sum: 0, Mean: 1, RMax: 2, RMin: 3 } as const;

/** `enum Act` of addon.cc: the activation fused into a convolution or matrix multiply. */
export const ACTIVATIONS = { Linear: 0, Relu: 1, Relu6: 2, Elu: 3, Leaky: 4, Sigmoid: 5 } as const;
