"""A reader for large JSON /step bodies that writes the samples straight into columns.

orjson builds a Python object for every sample, motor and number of a batch, and turning those
into columns costs more than the model run. This reader scans the body once (numba) and writes
each sample's numbers where the columns need them. It reads a strict subset of JSON: the
fields /step knows, with numbers, null and booleans where they belong. Anything else (an
escape in a key, an unknown field, a value of the wrong type, a duplicate key, a sample that
fails validation) makes it give up, and the body takes the general path (orjson, then the
validation), which accepts it or names the problem. So the reader changes no answer, only the
time to reach it.

Numbers are rounded to the nearest double, as orjson and Python round them: Clinger's exact
fast path (W. D. Clinger, "How to read floating point numbers accurately", PLDI 1990), then
the Eisel-Lemire algorithm (D. Lemire, "Number parsing at a gigabyte per second", Software:
Practice and Experience 51(8), 2021), and Python's float() for the few numbers neither
settles (more than 19 significant digits, subnormals, exact ties).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson

from twin_service.errors import ApiError
from twin_service.models.jit import entry, jit
from twin_service.step.samples import (
    BOOL_FIELDS,
    MAX_MOTORS,
    MOTOR_FIELDS,
    NUMERIC_FIELDS,
    SampleColumns,
    _check_count,
    _check_range,
    _Errors,
    _finish,
    parse_columnar,
)

# Keys the reader knows, by index: the numeric fields, the boolean ones, motors, then the
# motor entries' two fields. Key 0 of the body's top level is "samples".
ROW_FIELDS = (*NUMERIC_FIELDS, *BOOL_FIELDS, "motors")
NF = len(NUMERIC_FIELDS)
K_BOOL, K_MOTORS = NF, NF + len(BOOL_FIELDS)
K_TORQUE, K_SPEED = K_MOTORS + 1, K_MOTORS + 2
_KEY_NAMES = (*ROW_FIELDS, *MOTOR_FIELDS)
assert tuple(MOTOR_FIELDS) == ("torque_nm", "speed_rad_s")


def _key_table(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Known keys for _key: their bytes end to end, where each starts (and the end), and the
    index of the one key of each length and first byte (-1: none)."""
    encoded = [k.encode() for k in names]
    at = np.full((max(map(len, encoded)) + 1, 128), -1, dtype=np.int64)
    for k, key in enumerate(encoded):
        assert at[len(key), key[0]] == -1, "two known keys share a length and first byte"
        at[len(key), key[0]] = k
    joined = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
    return joined, np.cumsum([0, *map(len, encoded)]).astype(np.int64), at


_KEY_BYTES, _KEY_OFF, _KEY_AT = _key_table(_KEY_NAMES)
_SAMPLES, _SAMPLES_OFF, _SAMPLES_AT = _key_table(("samples",))

MAX_FALLBACKS = 4096  # numbers left to float(); more and the reader gives up
MAX_COLUMNS = 64
# The reader's outcome: done, or give up (the general path decides)
OK, GIVE_UP = 0, 1
# Where a number left to float() goes: the numeric fields, the motors' two, a column's values
TO_NUM, TO_MOTOR, TO_VALUES = 0, 1, 2

# Eisel-Lemire: for each decimal exponent q in [Q_MIN, Q_MAX], the 128 leading bits of 5^q
# (rounded down, top bit set) and the binary exponent that goes with them.
Q_MIN, Q_MAX = -342, 308


def _power_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    hi, lo, exp2 = [], [], []
    for q in range(Q_MIN, Q_MAX + 1):
        if q >= 0:
            p = 5**q
            bits = p.bit_length()
            t = p << (128 - bits) if bits <= 128 else p >> (bits - 128)
            f5 = bits - 1  # floor(log2(5^q))
        else:
            p = 5**-q
            bits = p.bit_length()
            t = (1 << (bits + 127)) // p  # in [2^127, 2^128): p is not a power of two
            f5 = -bits
        assert 1 << 127 <= t < 1 << 128
        hi.append(t >> 64)
        lo.append(t & ((1 << 64) - 1))
        # IEEE biased exponent for a 53-bit mantissa taken from the top of a 128-bit product
        # of a normalised 64-bit mantissa and t (before the leading-zero and carry terms).
        exp2.append(f5 + q + 1087)
    return (
        np.array(hi, dtype=np.uint64),
        np.array(lo, dtype=np.uint64),
        np.array(exp2, dtype=np.int64),
    )


_T_HI, _T_LO, _T_EXP2 = _power_table()
_POW10 = np.array([10.0**k for k in range(23)])  # exact in binary64


_U32 = np.uint64(32)
_M32 = np.uint64(0xFFFFFFFF)
_LOW9 = np.uint64(0x1FF)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_ONE = np.uint64(1)
_ZERO = np.uint64(0)
_MAX_EXACT = np.uint64(1 << 53)
_SIG19 = 19


@jit
def _mul128(a, b):
    """The high and low 64 bits of the 128-bit product of two uint64."""
    a_lo, a_hi = a & _M32, a >> _U32
    b_lo, b_hi = b & _M32, b >> _U32
    p0 = a_lo * b_lo
    p1 = a_lo * b_hi
    p2 = a_hi * b_lo
    mid = (p0 >> _U32) + (p1 & _M32) + (p2 & _M32)
    lo = (mid << _U32) | (p0 & _M32)
    hi = a_hi * b_hi + (p1 >> _U32) + (p2 >> _U32) + (mid >> _U32)
    return hi, lo


@jit
def _eisel_lemire(man, q, t_hi, t_lo, t_exp2):
    """man x 10^q rounded to the nearest double (man > 0, at most 19 digits), and whether the
    algorithm could decide it (if not, the caller rounds it another way)."""
    if q < Q_MIN or q > Q_MAX:
        return 0.0, False
    k = q - Q_MIN
    clz = 0
    m = man
    for width in (32, 16, 8, 4, 2, 1):
        if m >> np.uint64(64 - width) == _ZERO:
            m = m << np.uint64(width)
            clz += width
    hi, lo = _mul128(m, t_hi[k])
    if hi & _LOW9 == _LOW9 and lo + m < m:
        # The truncated product may be one carry short: take the table's low half into it.
        y_hi, y_lo = _mul128(m, t_lo[k])
        merged_lo = lo + y_hi
        merged_hi = hi + _ONE if merged_lo < lo else hi
        if merged_hi & _LOW9 == _LOW9 and merged_lo == _ALL and y_lo + m < m:
            return 0.0, False
        hi, lo = merged_hi, merged_lo
    top = hi >> np.uint64(63)
    mant = hi >> (top + np.uint64(9))
    exp2 = t_exp2[k] - clz - (1 - np.int64(top))
    if lo == _ZERO and hi & _LOW9 == _ZERO and mant & np.uint64(3) == _ONE:
        return 0.0, False  # may be an exact tie, which rounds to even
    mant = (mant + (mant & _ONE)) >> _ONE
    if mant >> np.uint64(53) != _ZERO:
        mant = mant >> _ONE
        exp2 += 1
    if exp2 <= 0 or exp2 >= 0x7FF:
        return 0.0, False  # subnormal, zero or beyond the largest double
    return math.ldexp(float(mant), exp2 - 1075), True


@jit
def _at(buf, i):
    """The byte at i, or 0 past the end."""
    return buf[i] if i < buf.shape[0] else 0


@jit
def _ws(buf, i):
    n = buf.shape[0]
    while i < n:
        c = buf[i]
        if c != 32 and c != 10 and c != 13 and c != 9:
            break
        i += 1
    return i


@jit
def _literal(buf, i, word):
    """Whether the bytes at i spell `word` (ASCII codes)."""
    if i + len(word) > buf.shape[0]:
        return False
    for j in range(len(word)):
        if buf[i + j] != word[j]:
            return False
    return True


_NULL = (110, 117, 108, 108)
_TRUE = (116, 114, 117, 101)
_FALSE = (102, 97, 108, 115, 101)


@jit
def _key(buf, i, names, offsets, at):
    """The known key whose quoted string starts at i: (index, position after the string);
    index -1 for a key it does not know, -2 for one it cannot read (an escape, a control
    byte, no closing quote). `names`, `offsets`, `at`: the keys' _key_table."""
    n = buf.shape[0]
    start = i + 1
    j = start
    while j < n and buf[j] != 34:
        if buf[j] == 92 or buf[j] < 32:
            return -2, j
        j += 1
    if j >= n:
        return -2, j
    length = j - start
    if length == 0 or length >= at.shape[0] or buf[start] >= 128:
        return -1, j + 1
    k = at[length, buf[start]]
    if k < 0:
        return -1, j + 1
    first = offsets[k]
    for t in range(1, length):
        if buf[start + t] != names[first + t]:
            return -1, j + 1
    return k, j + 1


@jit
def _member(buf, i):
    """A sample's or a motor's member from the key's quote at i: (key index, position of its
    value), index -1 if it is not a known key followed by a colon."""
    if _at(buf, i) != 34:
        return -1, i
    k, i = _key(buf, i, _KEY_BYTES, _KEY_OFF, _KEY_AT)
    i = _ws(buf, i)
    if k < 0 or _at(buf, i) != 58:
        return -1, i
    return k, _ws(buf, i + 1)


@jit
def _number(buf, i, t_hi, t_lo, t_exp2):
    """A JSON number at i: (value, position after it, kind), kind 0 read, 1 valid but left to
    float(), -1 not a JSON number. An integer literal reads as the float of the integer
    (so -0 is 0.0, as orjson gives it)."""
    n = buf.shape[0]
    neg = False
    if i < n and buf[i] == 45:
        neg = True
        i += 1
    if i >= n or not 48 <= buf[i] <= 57:
        return 0.0, i, -1
    man = _ZERO
    digits = 0
    exp10 = 0
    many = False
    integer = True
    if buf[i] == 48:
        i += 1
        if i < n and 48 <= buf[i] <= 57:
            return 0.0, i, -1  # a leading zero
    else:
        while i < n and 48 <= buf[i] <= 57:
            if digits < _SIG19:
                man = man * np.uint64(10) + np.uint64(buf[i] - 48)
                digits += 1
            else:
                many = True
            i += 1
    if i < n and buf[i] == 46:
        integer = False
        i += 1
        if i >= n or not 48 <= buf[i] <= 57:
            return 0.0, i, -1
        while i < n and 48 <= buf[i] <= 57:
            d = buf[i] - 48
            if digits == 0 and d == 0:
                exp10 -= 1  # a leading zero of the fraction
            elif digits < _SIG19:
                man = man * np.uint64(10) + np.uint64(d)
                digits += 1
                exp10 -= 1
            else:
                many = True
            i += 1
    if i < n and (buf[i] == 101 or buf[i] == 69):
        integer = False
        i += 1
        sign = 1
        if i < n and (buf[i] == 43 or buf[i] == 45):
            sign = -1 if buf[i] == 45 else 1
            i += 1
        if i >= n or not 48 <= buf[i] <= 57:
            return 0.0, i, -1
        e = 0
        while i < n and 48 <= buf[i] <= 57:
            if e < 100_000:
                e = e * 10 + (buf[i] - 48)
            i += 1
        exp10 += sign * e
    if many:
        return 0.0, i, 1
    if man == _ZERO:
        return (-0.0 if neg and not integer else 0.0), i, 0
    if man <= _MAX_EXACT and -22 <= exp10 <= 22:
        v = float(man)
        v = v * _POW10[exp10] if exp10 >= 0 else v / _POW10[-exp10]
    else:
        v, ok = _eisel_lemire(man, exp10, t_hi, t_lo, t_exp2)
        if not ok:
            return 0.0, i, 1
    return (-v if neg else v), i, 0


@jit
def _skip(buf, i):
    """The position after the JSON value at i (strings and nesting followed, not validated:
    orjson reads it later), or -1."""
    n = buf.shape[0]
    depth = 0
    while i < n:
        c = buf[i]
        if c == 34:
            i += 1
            while i < n:
                d = buf[i]
                if d == 34:
                    break
                i += 2 if d == 92 else 1
            if i >= n:
                return -1
            i += 1
            if depth == 0:
                return i
            continue
        if c == 123 or c == 91:
            depth += 1
        elif c == 125 or c == 93:
            if depth == 0:
                return i
            depth -= 1
            if depth == 0:
                return i + 1
        elif depth == 0 and (c == 44 or c <= 32):
            return i
        i += 1
    return i if depth == 0 else -1


# The top level of a body: where its samples are, and that nothing else is.
FOUND, END = 0, 1


@entry
def top_level(buf, i, first):
    """Walk the members of the body's object from i (its '{' when `first`, else just after
    the samples value) to the "samples" key: (FOUND, position of its value), or (END, n) at
    the object's close with only whitespace after it, or (GIVE_UP + 1, -1) for anything
    else (not an object, a key with an escape, no members)."""
    n = buf.shape[0]
    i = _ws(buf, i)
    if first:
        if _at(buf, i) != 123:
            return GIVE_UP + 1, -1
        i = _ws(buf, i + 1)
    else:
        c = _at(buf, i)
        if c == 125:
            return (END, n) if _ws(buf, i + 1) == n else (GIVE_UP + 1, -1)
        if c != 44:
            return GIVE_UP + 1, -1
        i = _ws(buf, i + 1)
    while True:
        if _at(buf, i) != 34:
            return GIVE_UP + 1, -1
        k, i = _key(buf, i, _SAMPLES, _SAMPLES_OFF, _SAMPLES_AT)
        if k == -2:
            return GIVE_UP + 1, -1
        i = _ws(buf, i)
        if _at(buf, i) != 58:
            return GIVE_UP + 1, -1
        i = _ws(buf, i + 1)
        if k == 0:
            return FOUND, i
        after = _skip(buf, i)
        if after <= i:
            return GIVE_UP + 1, -1
        i = _ws(buf, after)
        c = _at(buf, i)
        if c == 44:
            i = _ws(buf, i + 1)
        elif c == 125:
            return (END, n) if _ws(buf, i + 1) == n else (GIVE_UP + 1, -1)
        else:
            return GIVE_UP + 1, -1


@jit
def _fallback(fb, n_fb, start, end, target, index):
    """Note a number for float(); False when there are too many."""
    if n_fb >= fb.shape[0]:
        return False
    fb[n_fb, 0] = start
    fb[n_fb, 1] = end
    fb[n_fb, 2] = target
    fb[n_fb, 3] = index
    return True


@entry
def read_rows(buf, i, num, flags, has_motors, motor_row, motor, fb, t_hi, t_lo, t_exp2):
    """Samples as rows from the '[' at i: each sample's numeric fields into num[row] (NaN
    where absent or null), booleans into flags[row], motors into motor (torque, speed) with
    their row in motor_row. Returns (status, rows, motor entries, fallbacks, seen keys as
    bits, position after the array)."""
    n_rows = n_motors = n_fb = 0
    seen = 0
    i = _ws(buf, i + 1)
    if _at(buf, i) == 93:
        return GIVE_UP, 0, 0, 0, 0, -1
    while True:
        if _at(buf, i) != 123 or n_rows >= num.shape[0]:
            return GIVE_UP, 0, 0, 0, 0, -1
        r = n_rows
        n_rows += 1
        for f in range(NF):
            num[r, f] = math.nan
        flags[r, 0] = False
        flags[r, 1] = False
        has_motors[r] = False
        given = 0
        i = _ws(buf, i + 1)
        if _at(buf, i) != 125:
            while True:
                k, i = _member(buf, i)
                if k < 0 or k > K_MOTORS or given & (1 << k):
                    return GIVE_UP, 0, 0, 0, 0, -1
                given |= 1 << k
                if _literal(buf, i, _NULL):
                    i += 4
                elif k < NF:
                    start = i
                    v, i, kind = _number(buf, i, t_hi, t_lo, t_exp2)
                    if kind < 0:
                        return GIVE_UP, 0, 0, 0, 0, -1
                    num[r, k] = v
                    if kind == 1:
                        if not _fallback(fb, n_fb, start, i, TO_NUM, r * NF + k):
                            return GIVE_UP, 0, 0, 0, 0, -1
                        n_fb += 1
                elif k < K_MOTORS:
                    if _literal(buf, i, _TRUE):
                        flags[r, k - K_BOOL] = True
                        i += 4
                    elif _literal(buf, i, _FALSE):
                        i += 5
                    else:
                        return GIVE_UP, 0, 0, 0, 0, -1
                else:
                    if _at(buf, i) != 91:
                        return GIVE_UP, 0, 0, 0, 0, -1
                    has_motors[r] = True
                    i = _ws(buf, i + 1)
                    count = 0
                    if _at(buf, i) == 93:
                        i += 1
                    else:
                        while True:
                            if _at(buf, i) != 123 or count >= MAX_MOTORS:
                                return GIVE_UP, 0, 0, 0, 0, -1
                            if n_motors >= motor.shape[0]:
                                return GIVE_UP, 0, 0, 0, 0, -1
                            e = n_motors
                            n_motors += 1
                            count += 1
                            motor_row[e] = r
                            mgiven = 0
                            i = _ws(buf, i + 1)
                            for _ in range(2):
                                mk, i = _member(buf, i)
                                if mk < K_TORQUE or mgiven & (1 << (mk - K_TORQUE)):
                                    return GIVE_UP, 0, 0, 0, 0, -1
                                mgiven |= 1 << (mk - K_TORQUE)
                                start = i
                                v, i, kind = _number(buf, i, t_hi, t_lo, t_exp2)
                                if kind < 0:
                                    return GIVE_UP, 0, 0, 0, 0, -1
                                col = mk - K_TORQUE
                                motor[e, col] = v
                                if kind == 1:
                                    if not _fallback(fb, n_fb, start, i, TO_MOTOR, e * 2 + col):
                                        return GIVE_UP, 0, 0, 0, 0, -1
                                    n_fb += 1
                                i = _ws(buf, i)
                                if mgiven != 3:
                                    if _at(buf, i) != 44:
                                        return GIVE_UP, 0, 0, 0, 0, -1
                                    i = _ws(buf, i + 1)
                            if _at(buf, i) != 125:
                                return GIVE_UP, 0, 0, 0, 0, -1
                            i = _ws(buf, i + 1)
                            c = _at(buf, i)
                            if c == 44:
                                i = _ws(buf, i + 1)
                            elif c == 93:
                                i += 1
                                break
                            else:
                                return GIVE_UP, 0, 0, 0, 0, -1
                i = _ws(buf, i)
                c = _at(buf, i)
                if c == 44:
                    i = _ws(buf, i + 1)
                elif c == 125:
                    break
                else:
                    return GIVE_UP, 0, 0, 0, 0, -1
        seen |= given
        i = _ws(buf, i + 1)
        c = _at(buf, i)
        if c == 44:
            i = _ws(buf, i + 1)
        elif c == 93:
            return OK, n_rows, n_motors, n_fb, seen, i + 1
        else:
            return GIVE_UP, 0, 0, 0, 0, -1


@jit
def _read_array(buf, i, boolean, values, n_values, fb, n_fb, t_hi, t_lo, t_exp2):
    """An array of numbers (or of booleans) and nulls from the '[' at i, appended to values
    (null: NaN for numbers, 0 for booleans). Returns (position after it, values, fallbacks),
    position -1 to give up."""
    i = _ws(buf, i + 1)
    if _at(buf, i) == 93:
        return i + 1, n_values, n_fb
    while True:
        if n_values >= values.shape[0]:
            return -1, n_values, n_fb
        if _literal(buf, i, _NULL):
            values[n_values] = 0.0 if boolean else math.nan
            i += 4
        elif boolean:
            if _literal(buf, i, _TRUE):
                values[n_values] = 1.0
                i += 4
            elif _literal(buf, i, _FALSE):
                values[n_values] = 0.0
                i += 5
            else:
                return -1, n_values, n_fb
        else:
            start = i
            v, i, kind = _number(buf, i, t_hi, t_lo, t_exp2)
            if kind < 0:
                return -1, n_values, n_fb
            values[n_values] = v
            if kind == 1:
                if not _fallback(fb, n_fb, start, i, TO_VALUES, n_values):
                    return -1, n_values, n_fb
                n_fb += 1
        n_values += 1
        i = _ws(buf, i)
        c = _at(buf, i)
        if c == 44:
            i = _ws(buf, i + 1)
        elif c == 93:
            return i + 1, n_values, n_fb
        else:
            return -1, n_values, n_fb


@entry
def read_columns(buf, i, values, table, fb, t_hi, t_lo, t_exp2):
    """Samples as columns from the '{' at i: each array's values appended to values, and per
    array a row of table (key, motor index or -1, first value, count). Returns (status,
    arrays, values, fallbacks, position after the object)."""
    n_cols = n_values = n_fb = 0
    given = 0
    i = _ws(buf, i + 1)
    if _at(buf, i) == 125:
        return GIVE_UP, 0, 0, 0, -1
    while True:
        k, i = _member(buf, i)
        if k < 0 or k > K_MOTORS or given & (1 << k):
            return GIVE_UP, 0, 0, 0, -1
        given |= 1 << k
        if _literal(buf, i, _NULL):
            i += 4
        elif _at(buf, i) != 91:
            return GIVE_UP, 0, 0, 0, -1
        elif k != K_MOTORS:
            if n_cols >= table.shape[0]:
                return GIVE_UP, 0, 0, 0, -1
            first = n_values
            i, n_values, n_fb = _read_array(
                buf, i, k >= NF, values, n_values, fb, n_fb, t_hi, t_lo, t_exp2
            )
            if i < 0:
                return GIVE_UP, 0, 0, 0, -1
            table[n_cols, 0] = k
            table[n_cols, 1] = -1
            table[n_cols, 2] = first
            table[n_cols, 3] = n_values - first
            n_cols += 1
        else:
            i = _ws(buf, i + 1)
            j = 0
            if _at(buf, i) == 93:
                return GIVE_UP, 0, 0, 0, -1  # no motors: the general path names it
            while True:
                if _at(buf, i) != 123 or j >= MAX_MOTORS:
                    return GIVE_UP, 0, 0, 0, -1
                mgiven = 0
                i = _ws(buf, i + 1)
                for _ in range(2):
                    mk, i = _member(buf, i)
                    if mk < K_TORQUE or mgiven & (1 << (mk - K_TORQUE)):
                        return GIVE_UP, 0, 0, 0, -1
                    mgiven |= 1 << (mk - K_TORQUE)
                    if _at(buf, i) != 91 or n_cols >= table.shape[0]:
                        return GIVE_UP, 0, 0, 0, -1
                    first = n_values
                    i, n_values, n_fb = _read_array(
                        buf, i, False, values, n_values, fb, n_fb, t_hi, t_lo, t_exp2
                    )
                    if i < 0:
                        return GIVE_UP, 0, 0, 0, -1
                    table[n_cols, 0] = mk
                    table[n_cols, 1] = j
                    table[n_cols, 2] = first
                    table[n_cols, 3] = n_values - first
                    n_cols += 1
                    i = _ws(buf, i)
                    if mgiven != 3:
                        if _at(buf, i) != 44:
                            return GIVE_UP, 0, 0, 0, -1
                        i = _ws(buf, i + 1)
                if _at(buf, i) != 125:
                    return GIVE_UP, 0, 0, 0, -1
                j += 1
                i = _ws(buf, i + 1)
                c = _at(buf, i)
                if c == 44:
                    i = _ws(buf, i + 1)
                elif c == 93:
                    i += 1
                    break
                else:
                    return GIVE_UP, 0, 0, 0, -1
        i = _ws(buf, i)
        c = _at(buf, i)
        if c == 44:
            i = _ws(buf, i + 1)
        elif c == 125:
            return OK, n_cols, n_values, n_fb, i + 1
        else:
            return GIVE_UP, 0, 0, 0, -1


def _settle(body: bytes, fb: np.ndarray, n_fb: int, targets: tuple[np.ndarray, ...]) -> bool:
    """Round the numbers the reader left with float(); False if one is not finite (the
    general path then refuses it as orjson and the validation do)."""
    for start, end, target, index in fb[:n_fb].tolist():
        v = float(body[start:end])
        if not math.isfinite(v):
            return False
        targets[target].reshape(-1)[index] = v
    return True


def _rows_columns(
    body: bytes, buf: np.ndarray, start: int, max_samples: int
) -> tuple[SampleColumns, int] | None:
    # Room for samples of 20 bytes (a valid one takes more, a comma included) and for motor
    # entries of 31 (`{"torque_nm":1,"speed_rad_s":1}`); beyond it the reader gives up.
    span = len(body) - start
    num = np.empty((span // 20 + 1, NF))
    flags = np.empty((num.shape[0], len(BOOL_FIELDS)), dtype=np.bool_)
    has_motors = np.empty(num.shape[0], dtype=np.bool_)
    motor_row = np.empty(span // 31 + 1, dtype=np.int64)
    motor = np.empty((motor_row.shape[0], 2))
    fb = np.empty((MAX_FALLBACKS, 4), dtype=np.int64)
    status, n, n_motors, n_fb, seen_bits, end = read_rows(
        buf, start, num, flags, has_motors, motor_row, motor, fb, _T_HI, _T_LO, _T_EXP2
    )
    if status != OK or not _settle(body, fb, n_fb, (num, motor)):
        return None
    seen = {name for k, name in enumerate(ROW_FIELDS) if seen_bits & (1 << k)}
    errors = _Errors()
    _check_count(n, max_samples, errors)
    nan_column = np.full(n, np.nan)
    cols: dict[str, np.ndarray] = {}
    present: dict[str, np.ndarray] = {}
    for f, (name, bounds) in enumerate(NUMERIC_FIELDS.items()):
        if name not in seen:
            cols[name], present[name] = nan_column, np.zeros(n, dtype=bool)
            continue
        col = np.ascontiguousarray(num[:n, f])
        given = ~np.isnan(col)
        _check_range(col, given, name, bounds, errors)
        cols[name], present[name] = col, given
    if not present["dt_s"].all():
        return None
    flag_cols = {name: np.ascontiguousarray(flags[:n, j]) for j, name in enumerate(BOOL_FIELDS)}
    torque = np.ascontiguousarray(motor[:n_motors, 0])
    speed = np.ascontiguousarray(motor[:n_motors, 1])
    for values, (low, high) in zip((torque, speed), MOTOR_FIELDS.values(), strict=True):
        if not ((values >= low) & (values <= high)).all():
            return None
    return _finish(
        n, cols, present, flag_cols, has_motors[:n].copy(), motor_row[:n_motors].copy(),
        torque, speed, seen, errors,
    ), end  # fmt: skip


def _columnar(
    body: bytes, buf: np.ndarray, start: int, max_samples: int
) -> tuple[SampleColumns, int] | None:
    values = np.empty((len(body) - start) // 2 + 1)
    table = np.empty((MAX_COLUMNS, 4), dtype=np.int64)
    fb = np.empty((MAX_FALLBACKS, 4), dtype=np.int64)
    status, n_cols, _, n_fb, end = read_columns(
        buf, start, values, table, fb, _T_HI, _T_LO, _T_EXP2
    )
    if status != OK or not _settle(body, fb, n_fb, (values, values, values)):
        return None
    samples: dict[str, Any] = {}
    motors: list[dict[str, np.ndarray]] = []
    for k, j, first, count in table[:n_cols].tolist():
        col = values[first : first + count].copy()
        name = _KEY_NAMES[k]
        if j < 0:
            samples[name] = col.astype(np.bool_) if k >= NF else col
        else:
            if j == len(motors):
                motors.append({})
            motors[j][name] = col
    if motors:
        samples["motors"] = motors
    return parse_columnar(samples, max_samples), end


def read_step_json(body: bytes, max_samples: int) -> tuple[dict[str, Any], SampleColumns] | None:
    """The envelope (the body without its samples, "samples" null) and the samples as
    validated columns, when this reader can take the body; None when it gives up, and the
    body then takes the general path (which decides every case the reader does not)."""
    buf = np.frombuffer(body, dtype=np.uint8)
    found, start = top_level(buf, 0, True)
    if found != FOUND:
        return None
    reader = {91: _rows_columns, 123: _columnar}.get(int(_at(buf, start)))
    if reader is None:
        return None
    try:
        read = reader(body, buf, start, max_samples)
    except ApiError:
        return None  # the general path reports it, in its order
    if read is None or top_level(buf, read[1], False)[0] != END:
        return None  # a second "samples", or something after the object
    try:
        envelope = orjson.loads(body[:start] + b"null" + body[read[1] :])
    except orjson.JSONDecodeError:
        return None
    if type(envelope) is not dict:
        return None
    return envelope, read[0]
