//! Operation codes for [`crate::abi::HostOps`].
//!
//! Codes are part of the contract: a published code never changes meaning, new operations get
//! new codes, and a host that does not know a code fails the call with a clear message.

macro_rules! op_codes {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $code:literal,)* }) => {
        $(#[$meta])*
        #[repr(u32)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($(#[$vmeta])* $variant = $code,)* }

        impl $name {
            /// The operation for a code, if this version of the contract knows it.
            pub fn from_code(code: u32) -> Option<Self> {
                match code { $($code => Some(Self::$variant),)* _ => None }
            }
        }
    };
}

op_codes! {
    /// Element-wise unary operations.
    Unary {
        /// `-x`
        Neg = 0,
        /// `e^x`
        Exp = 1,
        /// natural logarithm
        Log = 2,
        /// square root
        Sqrt = 3,
        /// `|x|`
        Abs = 4,
        /// `max(x, 0)`
        Relu = 5,
        /// hyperbolic tangent
        Tanh = 6,
        /// logistic sigmoid
        Sigmoid = 7,
        /// `x²`
        Square = 8,
        /// `1 / x`
        Recip = 9,
    }
}

op_codes! {
    /// Element-wise binary operations (numpy broadcasting).
    Binary {
        /// `a + b`
        Add = 0,
        /// `a - b`
        Sub = 1,
        /// `a * b`
        Mul = 2,
        /// `a / b`
        Div = 3,
        /// `a ^ b`
        Pow = 4,
    }
}

op_codes! {
    /// Element-wise operations with a scalar `s`.
    Scalar {
        /// `x + s`
        Add = 0,
        /// `x * s`
        Mul = 1,
        /// `x ^ s`
        Pow = 2,
        /// `max(x, s)`
        ClampMin = 3,
        /// `min(x, s)`
        ClampMax = 4,
    }
}

op_codes! {
    /// Reductions.
    Reduce {
        /// sum
        Sum = 0,
        /// mean
        Mean = 1,
        /// maximum
        Max = 2,
    }
}

op_codes! {
    /// Layer operations. Inputs and arguments per code:
    Layer {
        /// `inputs = [x, weight, (bias)]`, weight `[in, out]`: `x @ weight + bias`.
        Linear = 0,
        /// `inputs = [x, weight, (bias)]`, x `[n, c, h, w]`, weight `[out, c/groups, kh, kw]`;
        /// `args = [stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups]`.
        Conv2d = 1,
        /// `inputs = [x]`; `args = [kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w]`.
        MaxPool2d = 2,
        /// `inputs = [x]`; `args = [kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w]`.
        AvgPool2d = 3,
        /// `inputs = [x]`; `args = [out_h, out_w]`.
        AdaptiveAvgPool2d = 4,
        /// `inputs = [x]`; `fargs = [p]`: zeroes elements with probability `p` and scales the
        /// rest by `1/(1-p)` in training; identity in evaluation.
        Dropout = 5,
        /// `inputs = [x]`; `args = [dim]`.
        Softmax = 6,
        /// `inputs = [x]`; `args = [dim]`.
        LogSoftmax = 7,
        /// `inputs = [x, gamma, beta]`, x `[n, c]` or `[n, c, h, w]`, gamma and beta `[c]`
        /// **parameters** of the model; `fargs = [momentum, eps]`. Batch normalisation
        /// (Ioffe & Szegedy, 2015): in training, normalise with the batch's mean and biased
        /// variance per channel and update the layer's running statistics,
        /// `running = (1 - momentum) running + momentum batch` (unbiased variance, as PyTorch);
        /// in evaluation, normalise with the running statistics. The host owns the running
        /// statistics (one pair per `gamma`), resets them to 0 and 1 when a phase starts from an
        /// initialisation, and saves them with the model as `<gamma name>.running_mean` and
        /// `.running_var`.
        BatchNorm = 8,
        /// `inputs = [theta, anchors]`, theta `[n]`, anchors `[K, n]`: the `[K]` squared
        /// distances `‖theta − anchors[k]‖²`, one pass over the anchors each way (the
        /// persistence and deflation penalties). Appended in 0.1.3.
        SquaredDistances = 9,
    }
}

op_codes! {
    /// Distributions for [`crate::abi::HostOps::random`].
    Random {
        /// Normal with mean `a` and standard deviation `b`.
        Normal = 0,
        /// Uniform on `[a, b)`.
        Uniform = 1,
    }
}
