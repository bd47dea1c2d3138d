import AlexandriaHome
import AlexandriaObjectStore
import AlexandriaStore
import AlexandriaStoreS3
import Logging
import ServiceLifecycle

/// The write side of a home whose packs live in a bucket (`[store] backend = "s3"`, Protocol/store-s3.md): one
/// writer per prefix through the lease, sealed packs uploaded after writes, the bucket cleaned after GC.
enum ObjectStorage {
    /// The lease holder name: this home's node key, so every process of one home is the same writer (the store's
    /// own write lock already orders them) and a second home on the prefix is another.
    static func holder(_ home: Home) throws -> String {
        "ed25519:" + (try home.nodeKey().publicKey.rawRepresentation.map { String($0, radix: 16).leftPad(2) }.joined())
    }

    /// Runs `body` as the prefix's writer: checks the bucket, then works under the lease. When `node run` of this
    /// same home holds it (same holder), its renewal covers us; otherwise the lease is taken for the command and
    /// released after. A live lease of another node refuses the command with who holds it and for how long.
    static func asWriter<T: Sendable>(
        _ home: Home, _ s3: S3PackStore, _ body: @escaping @Sendable (LeaseKeeper?) async throws -> T
    ) throws -> T {
        let holder = try holder(home)
        return try s3.wait {
            try await s3.checkAccess()
            let lease = s3.lease(holder: holder)
            if let current = try await lease.read(), current.holder == holder,
                current.expiresMilliseconds > LeaseKeeper.wallClockMilliseconds()
            {
                return try await body(nil)
            }
            try await lease.acquire()
            do {
                // Renewed while the work runs (an upload of a large pack outlasts the lease's safe window).
                let result = try await withThrowingTaskGroup(of: T?.self) { group in
                    group.addTask {
                        try await lease.keepRenewing()
                        return nil
                    }
                    group.addTask { try await body(lease) }
                    while let next = try await group.next() {
                        if let next {
                            group.cancelAll()
                            return next
                        }
                    }
                    throw CancellationError()
                }
                try? await lease.release()
                return result
            } catch {
                try? await lease.release()
                throw error
            }
        }
    }

    /// Before a write on an s3 home: the bucket is reachable with these credentials, and no other node holds the
    /// lease (so a second node refuses before it does any work).
    static func checkWriter(_ home: Home) throws {
        guard let s3 = try home.objectStore() else { return }
        let holder = try holder(home)
        try s3.wait {
            try await s3.checkAccess()
            let lease = s3.lease(holder: holder)
            if let current = try await lease.read(), current.holder != holder,
                current.expiresMilliseconds + LeasePolicy().skewMilliseconds > LeaseKeeper.wallClockMilliseconds()
            {
                throw ObjectStoreError(
                    .leaseHeld,
                    "node \(current.holder) holds the write lease on \(s3.settings.bucket)/\(s3.settings.prefix)lease; "
                        + "a second node may write only after it expires")
            }
        }
    }

    /// After `add`, `rm` or a fetch: seals the open pack and uploads every sealed one. Nothing on a local home.
    /// When the engine fails, the error says what failed, that the write is kept in the home, and what to do.
    static func afterWrite(_ home: Home, _ store: ContentStore) throws {
        guard let s3 = try home.objectStore() else { return }
        do {
            _ = try asWriter(home, s3) { lease in try await s3.offload(store, sealOpen: true, lease: lease) }
        } catch let error as ObjectStoreError where error.code != .leaseHeld {
            throw uploadFailed(error, s3)
        }
    }

    /// An upload that failed after the write was committed locally: nothing is lost, and nothing needs doing by
    /// hand once the engine is fixed (the next write on the home, or its running node, uploads what is left).
    static func uploadFailed(_ error: ObjectStoreError, _ s3: S3PackStore) -> ObjectStoreError {
        let fix: String
        switch error.code {
        case .unreachable: fix = "start the engine (or fix [store] endpoint)"
        case .storageFull: fix = "free space on the engine"
        case .unavailable: fix = "check the engine's devices and free space"
        case .authentication, .noSuchBucket, .configuration: fix = "fix the credentials or [store] settings"
        default: fix = "fix the engine"
        }
        return ObjectStoreError(
            error.code,
            "the write is kept in this home, but moving its pack(s) to bucket \(s3.settings.bucket) at "
                + "\(s3.settings.endpoint) failed: \(error.message). Nothing is lost: \(fix); the next write on this "
                + "home (or its running node, within 10 s) uploads them, and reads work meanwhile",
            status: error.status)
    }
}

/// In `node run` on an s3 home: holds the lease (taken before the node starts serving), renews it, and uploads
/// sealed packs every `interval`; at a graceful stop uploads the rest and releases the lease. Losing the lease to
/// another node stops the node (it must not write any more).
///
/// A pack is sealed when it reaches the pack target (by the writer that fills it, whose upload then starts at
/// once), and the open pack once it has held records for `sealAfterSeconds`: a mirror that pulls many small files
/// makes one object a minute at most, not one per file, and nothing stays off the bucket longer than that.
struct ObjectStorageService: Service {
    let s3: S3PackStore
    let store: ContentStore
    let lease: LeaseKeeper
    let logger: Logger
    var intervalSeconds: UInt64 = 10
    var sealAfterSeconds: UInt64 = 60

    func run() async throws {
        var sinceRenewal: UInt64 = 0
        var openFor: UInt64 = 0
        let renewEvery = UInt64(LeasePolicy().ttlMilliseconds / 3000)
        while !Task.isShuttingDownGracefully {
            try? await Task.sleep(nanoseconds: 1_000_000_000)
            if Task.isShuttingDownGracefully { break }
            sinceRenewal += 1
            if sinceRenewal >= max(1, renewEvery) {
                sinceRenewal = 0
                do { try await lease.renew() } catch let error as ObjectStoreError where error.code == .leaseHeld {
                    logger.error("lost the write lease: \(error.message)")
                    throw error
                } catch {
                    logger.warning("could not renew the write lease: \(error)")
                }
            }
            if sinceRenewal % intervalSeconds == 0 {
                openFor = ((try? store.openPackBytes()) ?? 0) > 0 ? openFor + intervalSeconds : 0
                let seal = openFor >= sealAfterSeconds
                if seal { openFor = 0 }
                do {
                    let moved = try await s3.offload(store, sealOpen: seal, lease: lease)
                    if moved > 0 { logger.info("uploaded \(moved) pack(s) to the bucket") }
                } catch {
                    logger.warning("pack upload failed (retried later): \(error)")
                }
            }
        }
        do {
            try await s3.offload(store, sealOpen: true, lease: lease)
        } catch {
            logger.warning("pack upload at shutdown failed (done at the next start): \(error)")
        }
        try? await lease.release()
    }
}

extension String {
    fileprivate func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}
