import AlexandriaStore
import AlexandriaStoreS3
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One `S3PackStore` per settings in a process: its client, event loops and read bridge are shared by every store
/// opened on the home.
private let objectStores = Mutex<[String: S3PackStore]>([:])

extension Home {
    /// The bucket the store keeps its sealed packs in when `[store] backend = "s3"`; nil for a local store.
    /// Credentials come from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, else `[store] credentials_file`.
    public func objectStore() throws -> S3PackStore? {
        guard let settings = try config().s3 else { return nil }
        let key = "\(settings.endpoint)|\(settings.bucket)|\(settings.prefix)|\(settings.region)"
        if let existing = objectStores.withLock({ $0[key] }) { return existing }
        let made = try S3PackStore(settings: settings, environment: Self.environment())
        return objectStores.withLock { stores in
            if let existing = stores[key] { return existing }
            stores[key] = made
            return made
        }
    }

    static func environment() -> [String: String] {
        var out: [String: String] = [:]
        var entry = environ
        while let pointer = entry.pointee {
            let pair = String(cString: pointer)
            if let eq = pair.firstIndex(of: "=") { out[String(pair[..<eq])] = String(pair[pair.index(after: eq)...]) }
            entry += 1
        }
        return out
    }
}
