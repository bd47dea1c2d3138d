#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// How a chunk's bytes are stored in a pack record. Reads always return, and hash, the original bytes.
///
/// - `raw` (0): the bytes as they are.
/// - `zstd` (1): one zstd frame (with its content size) of the bytes.
/// - `byteGrouped` (2): the bytes split into two streams, even positions then odd positions, each stored raw or as
///   a zstd frame. Little-endian 16-bit floats (bf16, fp16) put the sign and exponent in the odd bytes, which then
///   compress far better than the interleaved data, and the near-random mantissa bytes are left raw (ZipNN's idea).
///   Payload: `flags u8` (bit 0: even stream is zstd, bit 1: odd stream is zstd), `even stored length u32 BE`,
///   the even stream, the odd stream. The even stream holds `(n + 1) / 2` bytes, the odd `n / 2`.
public enum ChunkCodec: UInt8, Sendable, CaseIterable {
    case raw = 0
    case zstd = 1
    case byteGrouped = 2
}

/// Encodes and decodes chunk payloads, with reusable zstd contexts and scratch buffers. One per thread.
final class ChunkCoder {
    /// A compressed form is kept only if it saves at least 1/16 (6.25 %) of the chunk: below that the CPU spent
    /// decompressing on every read costs more than the disk it saves.
    static let minimumSavingDivisor = 16
    /// A stream of a byte-grouped chunk is compressed only if it shrinks to 7/8 or less.
    static let streamKeepNumerator = 7
    /// The even (low, mantissa) stream is not offered to zstd when its bytes' order-0 entropy is at least this many
    /// bits per byte: entropy coding alone then cannot reach 7/8 (7 bits per byte), and near-random mantissa bytes
    /// hold no matches. This is what ZipNN does; it saves zstd's match search over half of every bf16 chunk. The
    /// cost is a byte histogram of that stream. Only repeats inside one chunk's high-entropy stream are given up.
    static let incompressibleBitsPerByte = 7.2

    private let compressor: ZstdCompressor
    /// For the odd (sign and exponent) stream of byte-grouped chunks.
    private let exponentCompressor = ZstdCompressor(skewedLiterals: ())
    private let decompressor = ZstdDecompressor()
    private var scratchA: UnsafeMutableRawBufferPointer
    private var scratchB: UnsafeMutableRawBufferPointer
    private var scratchC: UnsafeMutableRawBufferPointer

    init(level: Int32 = 1, maxChunk: Int) {
        compressor = ZstdCompressor(level: level)
        let size = maxChunk + maxChunk / 8 + 1024
        scratchA = .allocate(byteCount: size, alignment: 64)
        scratchB = .allocate(byteCount: size, alignment: 64)
        scratchC = .allocate(byteCount: size, alignment: 64)
    }

    deinit {
        scratchA.deallocate()
        scratchB.deallocate()
        scratchC.deallocate()
    }

    /// Chooses the cheapest stored form of `raw`. Returns `.raw` with an empty payload when nothing pays;
    /// otherwise a payload that lives in this coder's scratch space until the next call.
    func encode(_ raw: UnsafeRawBufferPointer) -> (ChunkCodec, UnsafeRawBufferPointer) {
        let n = raw.count
        let keepBelow = n - n / Self.minimumSavingDivisor
        guard n >= 64 else { return (.raw, UnsafeRawBufferPointer(start: nil, count: 0)) }

        // Try the odd (exponent) stream first: it is half the data and says whether the chunk is 16-bit floats.
        // The even stream is split straight to where a byte-grouped payload keeps it raw (after the 5-byte head), so
        // in the usual case (mantissa bytes stored raw) it is not copied again.
        let evenCount = (n + 1) / 2
        let oddCount = n / 2
        let even = UnsafeMutableRawBufferPointer(rebasing: scratchC[5..<5 + evenCount])
        let odd = UnsafeMutableRawBufferPointer(rebasing: scratchA[0..<oddCount])
        Self.split(raw, even: even, odd: odd)
        let oddLimit = oddCount * Self.streamKeepNumerator / 8
        let oddOut = UnsafeMutableRawBufferPointer(rebasing: scratchB[0..<scratchB.count / 2])
        if let oddZ = exponentCompressor.compress(UnsafeRawBufferPointer(odd), into: oddOut), oddZ <= oddLimit {
            let evenOut = UnsafeMutableRawBufferPointer(rebasing: scratchB[scratchB.count / 2..<scratchB.count])
            var flags: UInt8 = 0b10
            var evenStored = evenCount
            if Self.entropyBitsPerByte(UnsafeRawBufferPointer(even)) < Self.incompressibleBitsPerByte,
                let evenZ = compressor.compress(UnsafeRawBufferPointer(even), into: evenOut),
                evenZ <= evenCount * Self.streamKeepNumerator / 8
            {
                flags |= 0b01
                evenStored = evenZ
            }
            let total = 5 + evenStored + oddZ
            if total < keepBelow {
                scratchC[0] = flags
                scratchC.storeBytes(of: UInt32(evenStored).bigEndian, toByteOffset: 1, as: UInt32.self)
                if flags & 0b01 != 0 {  // the compressed even stream replaces the raw one
                    UnsafeMutableRawBufferPointer(rebasing: scratchC[5..<5 + evenStored]).copyMemory(
                        from: UnsafeRawBufferPointer(rebasing: evenOut[0..<evenStored]))
                }
                UnsafeMutableRawBufferPointer(rebasing: scratchC[5 + evenStored..<total]).copyMemory(
                    from: UnsafeRawBufferPointer(rebasing: oddOut[0..<oddZ]))
                return (.byteGrouped, UnsafeRawBufferPointer(rebasing: scratchC[0..<total]))
            }
        }
        let out = UnsafeMutableRawBufferPointer(rebasing: scratchC[0..<keepBelow])
        if let z = compressor.compress(raw, into: out) {
            return (.zstd, UnsafeRawBufferPointer(rebasing: scratchC[0..<z]))
        }
        return (.raw, UnsafeRawBufferPointer(start: nil, count: 0))
    }

    /// Decodes `payload` stored with `codec` into `destination`, which must be exactly the original length.
    /// Returns false when the payload is malformed in any way; the caller then reports the chunk as corrupt.
    func decode(
        _ codec: ChunkCodec, _ payload: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer
    )
        -> Bool
    {
        let n = destination.count
        switch codec {
        case .raw:
            guard payload.count == n else { return false }
            destination.copyMemory(from: payload)
            return true
        case .zstd:
            return decompressor.decompress(payload, into: destination)
        case .byteGrouped:
            guard payload.count >= 5, n <= scratchA.count else { return false }
            let flags = payload[0]
            guard flags & ~0b11 == 0 else { return false }
            let evenStored = Int(UInt32(bigEndian: payload.loadUnaligned(fromByteOffset: 1, as: UInt32.self)))
            guard evenStored <= payload.count - 5 else { return false }
            let evenCount = (n + 1) / 2
            let oddCount = n / 2
            let evenIn = UnsafeRawBufferPointer(rebasing: payload[5..<5 + evenStored])
            let oddIn = UnsafeRawBufferPointer(rebasing: payload[(5 + evenStored)...])
            let even = UnsafeMutableRawBufferPointer(rebasing: scratchA[0..<evenCount])
            let odd = UnsafeMutableRawBufferPointer(rebasing: scratchA[evenCount..<evenCount + oddCount])
            if flags & 0b01 != 0 {
                guard decompressor.decompress(evenIn, into: even) else { return false }
            } else {
                guard evenIn.count == evenCount else { return false }
                even.copyMemory(from: evenIn)
            }
            if flags & 0b10 != 0 {
                guard decompressor.decompress(oddIn, into: odd) else { return false }
            } else {
                guard oddIn.count == oddCount else { return false }
                odd.copyMemory(from: oddIn)
            }
            Self.interleave(even: UnsafeRawBufferPointer(even), odd: UnsafeRawBufferPointer(odd), into: destination)
            return true
        }
    }

    /// Order-0 (byte histogram) entropy of `bytes` in bits per byte, 0 for no bytes.
    static func entropyBitsPerByte(_ bytes: UnsafeRawBufferPointer) -> Double {
        let n = bytes.count
        guard n > 0 else { return 0 }
        return withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 1024) { counts -> Double in
            counts.initialize(repeating: 0)
            let b = bytes.bindMemory(to: UInt8.self)
            // Four tables, so consecutive equal bytes do not wait on each other's increment.
            var i = 0
            while i + 4 <= n {
                counts[Int(b[i])] &+= 1
                counts[256 + Int(b[i + 1])] &+= 1
                counts[512 + Int(b[i + 2])] &+= 1
                counts[768 + Int(b[i + 3])] &+= 1
                i += 4
            }
            while i < n {
                counts[Int(b[i])] &+= 1
                i += 1
            }
            var sum = 0.0
            for v in 0..<256 {
                let c = Double(counts[v] &+ counts[256 + v] &+ counts[512 + v] &+ counts[768 + v])
                if c > 0 { sum += c * log2(c) }
            }
            return log2(Double(n)) - sum / Double(n)
        }
    }

    /// Splits `raw` into its even-position and odd-position bytes. Sixteen pairs at a time as a vector of 16-bit
    /// lanes: the even bytes are the lanes truncated to 8 bits, the odd bytes the lanes shifted right by 8 and
    /// truncated (SSE2 `pand`/`psrlw` and `packuswb` on x86-64), on little-endian machines; the tail byte by byte.
    static func split(
        _ raw: UnsafeRawBufferPointer, even: UnsafeMutableRawBufferPointer,
        odd: UnsafeMutableRawBufferPointer
    ) {
        let src = raw.bindMemory(to: UInt8.self)
        let e = even.bindMemory(to: UInt8.self)
        let o = odd.bindMemory(to: UInt8.self)
        let pairs = raw.count / 2
        var i = 0
        #if _endian(little)
            if let s = raw.baseAddress, let eb = even.baseAddress, let ob = odd.baseAddress {
                while i + 16 <= pairs {  // 32 source bytes -> 16 even and 16 odd
                    let v = s.loadUnaligned(fromByteOffset: 2 * i, as: SIMD16<UInt16>.self)
                    eb.storeBytes(of: SIMD16<UInt8>(truncatingIfNeeded: v), toByteOffset: i, as: SIMD16<UInt8>.self)
                    ob.storeBytes(
                        of: SIMD16<UInt8>(truncatingIfNeeded: v &>> 8), toByteOffset: i, as: SIMD16<UInt8>.self)
                    i += 16
                }
            }
        #endif
        while i < pairs {
            e[i] = src[2 * i]
            o[i] = src[2 * i + 1]
            i += 1
        }
        if raw.count & 1 == 1 { e[pairs] = src[raw.count - 1] }
    }

    /// The inverse of `split`: sixteen pairs at a time, each even byte widened to a 16-bit lane and the odd byte
    /// shifted into its high half, on little-endian machines.
    static func interleave(
        even: UnsafeRawBufferPointer, odd: UnsafeRawBufferPointer,
        into destination: UnsafeMutableRawBufferPointer
    ) {
        let d = destination.bindMemory(to: UInt8.self)
        let e = even.bindMemory(to: UInt8.self)
        let o = odd.bindMemory(to: UInt8.self)
        let pairs = destination.count / 2
        var i = 0
        #if _endian(little)
            if let db = destination.baseAddress, let eb = even.baseAddress, let ob = odd.baseAddress {
                while i + 16 <= pairs {
                    let ev = SIMD16<UInt16>(
                        truncatingIfNeeded: eb.loadUnaligned(fromByteOffset: i, as: SIMD16<UInt8>.self))
                    let ov = SIMD16<UInt16>(
                        truncatingIfNeeded: ob.loadUnaligned(fromByteOffset: i, as: SIMD16<UInt8>.self))
                    db.storeBytes(of: ev | ov &<< 8, toByteOffset: 2 * i, as: SIMD16<UInt16>.self)
                    i += 16
                }
            }
        #endif
        while i < pairs {
            d[2 * i] = e[i]
            d[2 * i + 1] = o[i]
            i += 1
        }
        if destination.count & 1 == 1 { d[destination.count - 1] = e[pairs] }
    }
}
