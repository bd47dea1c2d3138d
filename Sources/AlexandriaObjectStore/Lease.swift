import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The write lease on a prefix, as stored in the object `<prefix>lease`: UTF-8 text, four lines,
///
/// ```
/// alexandria-lease-v1
/// holder <node id, no spaces>
/// token <32 hex digits, new for every acquisition>
/// expires <Unix milliseconds>
/// ```
///
/// One node at a time writes to a prefix. The engine has no conditional PUT (Swift's s3api answers
/// `If-None-Match: *` with 501), so the lease is taken by write-then-read-back: the last writer wins and every
/// contender learns who won after `settle`. That is a best-effort mutual exclusion; what makes a lost race
/// harmless for data is that pack objects are immutable and named by their content (Protocol/store-s3.md).
public struct LeaseRecord: Sendable, Equatable {
    public var holder: String
    public var token: String
    public var expiresMilliseconds: Int64

    static let maxBytes = 512

    public init(holder: String, token: String, expiresMilliseconds: Int64) {
        self.holder = holder
        self.token = token
        self.expiresMilliseconds = expiresMilliseconds
    }

    var encoded: String {
        "alexandria-lease-v1\nholder \(holder)\ntoken \(token)\nexpires \(expiresMilliseconds)\n"
    }

    /// Parses a lease object; nil for anything that is not exactly the format above.
    init?(parsing text: String) {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count == 5, lines[0] == "alexandria-lease-v1", lines[4].isEmpty,
            lines[1].hasPrefix("holder "), lines[2].hasPrefix("token "), lines[3].hasPrefix("expires "),
            let expires = Int64(lines[3].dropFirst(8))
        else { return nil }
        let holder = String(lines[1].dropFirst(7))
        let token = String(lines[2].dropFirst(6))
        guard !holder.isEmpty, !holder.contains(" "), token.count == 32, token.allSatisfy(\.isHexDigit) else {
            return nil
        }
        self.init(holder: holder, token: token, expiresMilliseconds: expires)
    }
}

/// The lease rules, with no I/O: what a node should do given the lease object it read and its clock.
public struct LeasePolicy: Sendable {
    /// How long a lease lasts after each write.
    public var ttlMilliseconds: Int64
    /// Extra time granted to another holder's expiry before we take over, to absorb clock skew between nodes.
    public var skewMilliseconds: Int64

    public init(ttlMilliseconds: Int64 = 30_000, skewMilliseconds: Int64 = 2_000) {
        self.ttlMilliseconds = ttlMilliseconds
        self.skewMilliseconds = skewMilliseconds
    }

    public enum Decision: Sendable, Equatable {
        /// Write our lease (first take, takeover after expiry, or renewal of our own).
        case write(LeaseRecord)
        /// Someone else holds it until this time (their clock, plus skew).
        case heldBy(holder: String, untilMilliseconds: Int64)
    }

    /// `current` is the lease object as read (nil if absent or unreadable); `token` identifies our acquisition.
    public func decide(current: LeaseRecord?, holder: String, token: String, nowMilliseconds now: Int64) -> Decision {
        let ours = LeaseRecord(holder: holder, token: token, expiresMilliseconds: now + ttlMilliseconds)
        guard let current else { return .write(ours) }
        if current.token == token { return .write(ours) }
        let until = current.expiresMilliseconds + skewMilliseconds
        if now >= until { return .write(ours) }
        return .heldBy(holder: current.holder, untilMilliseconds: until)
    }

    /// True while a lease we last wrote at `writtenAt` may still be relied on: up to a margin of a third of the TTL
    /// before it expires, so a writer stops before a taker could start.
    public func stillHeld(writtenAtMilliseconds writtenAt: Int64, nowMilliseconds now: Int64) -> Bool {
        now < writtenAt + ttlMilliseconds - ttlMilliseconds / 3
    }
}

/// Takes, renews and releases the write lease on a prefix in a bucket. One per node process.
public actor LeaseKeeper {
    public let client: S3Client
    public let bucket: String
    public let key: String
    public let holder: String
    public let policy: LeasePolicy
    /// Time between writing our lease and reading it back to see who won.
    let settleMilliseconds: Int64
    let clock: @Sendable () -> Int64
    let token: String
    /// When our lease was last written and read back as ours; nil when we do not hold it.
    private(set) var confirmedAt: Int64?

    public init(
        client: S3Client, bucket: String, prefix: String, holder: String, policy: LeasePolicy = LeasePolicy(),
        settleMilliseconds: Int64 = 1000, clock: @escaping @Sendable () -> Int64 = LeaseKeeper.wallClockMilliseconds
    ) {
        self.client = client
        self.bucket = bucket
        self.key = prefix + "lease"
        self.holder = holder.isEmpty || holder.contains(" ") || holder.contains("\n") ? "node" : holder
        self.policy = policy
        self.settleMilliseconds = settleMilliseconds
        self.clock = clock
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255) }
        self.token = SigV4Signer.hex(bytes)
    }

    /// Reads the lease object; nil if there is none. An unparseable object counts as none (and is overwritten).
    public func read() async throws -> LeaseRecord? {
        do {
            let body = try await client.getObject(bucket: bucket, key: key, maxBytes: LeaseRecord.maxBytes)
            return LeaseRecord(parsing: String(buffer: body))
        } catch let error as ObjectStoreError where error.code == .notFound {
            return nil
        } catch let error as ObjectStoreError where error.code == .limitExceeded {
            return nil
        }
    }

    /// Takes the lease, or renews ours. Throws `leaseHeld` naming the holder and when its lease runs out.
    public func acquire() async throws {
        for _ in 0..<3 {
            let readAt = clock()
            switch policy.decide(current: try await read(), holder: holder, token: token, nowMilliseconds: readAt) {
            case .heldBy(let other, let until):
                confirmedAt = nil
                throw ObjectStoreError(
                    .leaseHeld,
                    "node \(other) holds the write lease on \(bucket)/\(key) for another \((until - readAt + 999) / 1000) s; "
                        + "a second node may take over only after it expires")
            case .write(let record):
                try await client.putObject(bucket: bucket, key: key, body: ByteBuffer(string: record.encoded))
                let wroteAt = clock()
                if wroteAt - readAt > settleMilliseconds / 2 { continue }  // too slow to trust the read: again
                if confirmedAt != nil, wroteAt - readAt <= settleMilliseconds / 2, try await read()?.token == token {
                    // A renewal: our own lease was in place when we read it, so no contender could have started.
                    confirmedAt = readAt
                    return
                }
                try await Task.sleep(nanoseconds: UInt64(settleMilliseconds) * 1_000_000)
                let back = try await read()
                if back?.token == token {
                    confirmedAt = readAt
                    return
                }
                confirmedAt = nil
                throw ObjectStoreError(
                    .leaseHeld,
                    "node \(back?.holder ?? "unknown") took the write lease on \(bucket)/\(key) at the same time; "
                        + "it holds it now")
            }
        }
        throw ObjectStoreError(.unavailable, "could not write the lease \(bucket)/\(key) quickly enough to trust it")
    }

    /// Renews our lease. Throws `leaseHeld` if another node took it over (ours had expired).
    public func renew() async throws {
        guard confirmedAt != nil else { return try await acquire() }
        let current = try await read()
        guard current == nil || current?.token == token else {
            confirmedAt = nil
            throw ObjectStoreError(
                .leaseHeld, "node \(current!.holder) took over the write lease on \(bucket)/\(key); stop writing")
        }
        try await acquire()
    }

    /// True while writes under the lease are safe (see `LeasePolicy.stillHeld`).
    public func isHeld() -> Bool {
        guard let confirmedAt else { return false }
        return policy.stillHeld(writtenAtMilliseconds: confirmedAt, nowMilliseconds: clock())
    }

    /// Throws `leaseHeld` unless `isHeld()`.
    public func requireHeld() throws {
        guard isHeld() else {
            throw ObjectStoreError(
                .leaseHeld, "this node no longer holds the write lease on \(bucket)/\(key) (not renewed in time)")
        }
    }

    /// Deletes the lease object if it is still ours, so another node can take over at once.
    public func release() async throws {
        defer { confirmedAt = nil }
        guard confirmedAt != nil, try await read()?.token == token else { return }
        try await client.deleteObject(bucket: bucket, key: key)
    }

    /// Renews every third of the TTL until cancelled or the lease is lost (then throws).
    public func keepRenewing() async throws {
        while !Task.isCancelled {
            try await Task.sleep(nanoseconds: UInt64(policy.ttlMilliseconds / 3) * 1_000_000)
            try await renew()
        }
    }

    public static let wallClockMilliseconds: @Sendable () -> Int64 = {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}
