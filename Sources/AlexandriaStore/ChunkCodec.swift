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
        let evenCount = (n + 1) / 2
        let oddCount = n / 2
        let even = UnsafeMutableRawBufferPointer(rebasing: scratchA[0..<evenCount])
        let odd = UnsafeMutableRawBufferPointer(rebasing: scratchA[evenCount..<n])
        Self.split(raw, even: even, odd: odd)
        let oddLimit = oddCount * Self.streamKeepNumerator / 8
        let oddOut = UnsafeMutableRawBufferPointer(rebasing: scratchB[0..<scratchB.count / 2])
        if let oddZ = exponentCompressor.compress(UnsafeRawBufferPointer(odd), into: oddOut), oddZ <= oddLimit {
            let evenOut = UnsafeMutableRawBufferPointer(rebasing: scratchB[scratchB.count / 2..<scratchB.count])
            var flags: UInt8 = 0b10
            var evenStored = UnsafeRawBufferPointer(even)
            if Self.entropyBitsPerByte(UnsafeRawBufferPointer(even)) < Self.incompressibleBitsPerByte,
                let evenZ = compressor.compress(UnsafeRawBufferPointer(even), into: evenOut),
                evenZ <= evenCount * Self.streamKeepNumerator / 8
            {
                flags |= 0b01
                evenStored = UnsafeRawBufferPointer(rebasing: evenOut[0..<evenZ])
            }
            let total = 5 + evenStored.count + oddZ
            if total < keepBelow {
                scratchC[0] = flags
                scratchC.storeBytes(of: UInt32(evenStored.count).bigEndian, toByteOffset: 1, as: UInt32.self)
                UnsafeMutableRawBufferPointer(rebasing: scratchC[5..<5 + evenStored.count]).copyMemory(
                    from: evenStored)
                UnsafeMutableRawBufferPointer(rebasing: scratchC[5 + evenStored.count..<total]).copyMemory(
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

    /// Splits `raw` into its even-position and odd-position bytes. Eight bytes at a time through 64-bit words on
    /// little-endian machines (the byte-at-a-time loop cost about 4.5 instructions a byte).
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
            // Bytes 0, 2, 4, 6 of a little-endian word, packed into its low 32 bits in order.
            @inline(__always) func gather(_ w: UInt64) -> UInt64 {
                var x = w & 0x00FF_00FF_00FF_00FF
                x = (x | (x &>> 8)) & 0x0000_FFFF_0000_FFFF
                return (x | (x &>> 16)) & 0x0000_0000_FFFF_FFFF
            }
            if let s = raw.baseAddress, let eb = even.baseAddress, let ob = odd.baseAddress {
                while i + 8 <= pairs {  // 16 source bytes -> 8 even and 8 odd
                    let w0 = s.loadUnaligned(fromByteOffset: 2 * i, as: UInt64.self)
                    let w1 = s.loadUnaligned(fromByteOffset: 2 * i + 8, as: UInt64.self)
                    eb.storeBytes(of: gather(w0) | gather(w1) &<< 32, toByteOffset: i, as: UInt64.self)
                    ob.storeBytes(of: gather(w0 &>> 8) | gather(w1 &>> 8) &<< 32, toByteOffset: i, as: UInt64.self)
                    i += 8
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

    /// The inverse of `split`.
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
            // Four bytes into positions 0, 2, 4, 6 of a little-endian word.
            @inline(__always) func spread(_ v: UInt64) -> UInt64 {
                var x = v & 0x0000_0000_FFFF_FFFF
                x = (x | (x &<< 16)) & 0x0000_FFFF_0000_FFFF
                return (x | (x &<< 8)) & 0x00FF_00FF_00FF_00FF
            }
            if let db = destination.baseAddress, let eb = even.baseAddress, let ob = odd.baseAddress {
                while i + 8 <= pairs {
                    let ev = eb.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                    let ov = ob.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                    db.storeBytes(of: spread(ev) | spread(ov) &<< 8, toByteOffset: 2 * i, as: UInt64.self)
                    db.storeBytes(
                        of: spread(ev &>> 32) | spread(ov &>> 32) &<< 8, toByteOffset: 2 * i + 8, as: UInt64.self)
                    i += 8
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
