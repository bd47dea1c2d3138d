import AlexandriaCore
import AlexandriaManifest
import AlexandriaStore
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Fetching a release's files: the one place `fetch REF -o DIR` (into a folder) and replication (into the store)
/// share. Every file is fetched by `Fetcher`, so every chunk is hashed before it is written, every file is checked
/// against its SHA-256 and the manifest's Merkle root, and chunks the store already holds are not downloaded again.
public struct ReleaseFetch: Sendable {
    public let fetcher: Fetcher

    public init(fetcher: Fetcher) { self.fetcher = fetcher }

    /// The manifest's files the store does not hold complete: the ones peers are needed for.
    public func missingFiles(of manifest: Manifest) -> [Manifest.File] {
        manifest.files.filter { file in
            guard let availability = try? fetcher.store.availability(of: file.sha256) else { return true }
            return !availability.complete
        }
    }

    /// Replication: brings every missing file into the store's packs (sets the fetcher's `copyIntoStore`). Each is
    /// assembled in `scratchDirectory` and dropped once its chunks are in the packs. Throws at the first file no peer
    /// could provide; the files before it stay in the store.
    public func pullIntoStore(_ manifest: Manifest, peers: [PeerAddress], scratchDirectory: String) async throws {
        fetcher.copyIntoStore = true
        for file in missingFiles(of: manifest) {
            let scratch = scratchDirectory + "/alexandria-replica-\(file.sha256.hex.prefix(24))"
            defer { unlink(scratch) }
            _ = try await fetcher.fetch(file.sha256, to: scratch, peers: peers, expectedRoot: file.merkleRoot)
        }
    }

    /// What a fetch into a folder did.
    public struct FolderReport: Sendable, Encodable {
        /// The folder, absolute.
        public let directory: String
        public let files: Int
        /// Files written into the folder, and their bytes: each byte written once (see `fetch(_:into:…)`).
        public let filesWritten: Int
        public let bytesWritten: UInt64
        /// Files that were already in the folder with the right content, left as they were.
        public let filesKept: Int
        public let bytesDownloaded: UInt64
        public let bytesFromLocalStore: UInt64
        /// Bytes received from each peer, and why peers were dropped.
        public let peers: [String: UInt64]
        public let droppedPeers: [String: String]
    }

    /// Fetches a release into the folder `directory`, all or nothing, each byte written once.
    ///
    /// First every target is checked (`FolderPlan`): a path that would go through a link or a non-folder, a folder
    /// where a file goes, or (without `force`) an existing file with other content refuses the whole fetch before
    /// anything is written. Then each file is fetched into a staging folder beside `directory` (in its parent, so on
    /// the same file system): chunks from peers are written there once and the store keeps them by reference (the
    /// fetcher's `copyIntoStore` is turned off), chunks the store holds are copied from it, verified. Only when
    /// every file is complete and verified do they move into place: the staging folder is renamed to `directory` if
    /// that did not exist, else each file is renamed into it. A failed fetch leaves `directory` as it was; the
    /// staging folder keeps what was received, and fetching the same release again resumes from it.
    ///
    /// `progress` gets (bytes done, bytes to write), over the files to write.
    public func fetch(
        _ manifest: Manifest, id: ContentHash, into directory: String, peers: [PeerAddress], force: Bool,
        progress: (@Sendable (UInt64, UInt64) -> Void)? = nil
    ) async throws -> FolderReport {
        let plan = try FolderPlan(manifest: manifest, id: id, directory: directory, force: force)
        fetcher.copyIntoStore = false
        try plan.makeStaging()
        let toWrite = plan.files.filter { $0.action != .keep }
        let total = toWrite.reduce(UInt64(0)) { $0 + $1.file.size }
        var done: UInt64 = 0
        var downloaded: UInt64 = 0
        var fromStore: UInt64 = 0
        var received: [String: UInt64] = [:]
        var dropped: [String: String] = [:]
        for target in toWrite {
            let staged = plan.staging + "/" + target.file.path
            try FolderPlan.makeParents(of: target.file.path, under: plan.staging)
            let before = done
            let size = target.file.size
            let report: FetchReport
            do {
                report = try await fetcher.fetch(
                    target.file.sha256, to: staged, peers: peers, expectedRoot: target.file.merkleRoot
                ) { chunksDone, chunks, _ in
                    progress?(before + size * UInt64(chunksDone) / UInt64(max(chunks, 1)), total)
                }
            } catch {
                throw PeerError(
                    .incomplete,
                    "\(target.file.path): \(error). Nothing was written to \(plan.root); what was received is kept in "
                        + "\(plan.staging), and fetching the release again resumes from it (or delete it)")
            }
            done += size
            progress?(done, total)
            downloaded += report.bytesDownloaded
            fromStore += report.bytesFromLocalStore
            received.merge(report.peers, uniquingKeysWith: +)
            dropped.merge(report.droppedPeers) { a, _ in a }
        }
        try plan.commit(store: fetcher.store)
        return FolderReport(
            directory: plan.root, files: manifest.files.count, filesWritten: toWrite.count, bytesWritten: total,
            filesKept: plan.files.count - toWrite.count, bytesDownloaded: downloaded, bytesFromLocalStore: fromStore,
            peers: received, droppedPeers: dropped)
    }

    /// Where a file staged for `directory` goes once committed: `P/.B.alexandria-staging-<id>/rest` is `P/B/rest`.
    /// Lets `Fetcher.recoverInterruptedFetches` point links at a file moved into place by a process killed before it
    /// recorded the move.
    public static func committedPath(ofStaged path: String) -> String? {
        var components = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        for (i, name) in components.enumerated() where name.hasPrefix(".") {
            let rest = name.dropFirst()
            guard let marker = rest.range(of: FolderPlan.stagingMarker) else { continue }
            let base = rest[rest.startIndex..<marker.lowerBound]
            guard !base.isEmpty else { continue }
            components[i] = String(base)
            return components.joined(separator: "/")
        }
        return nil
    }
}

/// A release fetch's targets in a folder, every one checked before anything is written, and the staging folder the
/// files are assembled in.
public struct FolderPlan: Sendable {
    public enum Action: Sendable, Equatable {
        /// Nothing is there: write it.
        case write
        /// A file (or link) of other content is there and `force` was given: replace it (a link is replaced, never
        /// followed).
        case replace
        /// The right content is already there: leave it.
        case keep
    }

    public struct Target: Sendable {
        public let file: Manifest.File
        public let action: Action
    }

    static let stagingMarker = ".alexandria-staging-"
    /// Problems listed in a refusal before "and N more".
    static let maxListedProblems = 5

    /// The folder, absolute (a link given as the folder itself is resolved: the user chose it).
    public let root: String
    /// Whether `root` existed when planned (else the staging folder is renamed to it whole).
    public let rootExists: Bool
    /// `P/.B.alexandria-staging-<first 16 hex of the manifest id>` for `root` = `P/B`: one per folder and release,
    /// so a second attempt resumes the first's partial files.
    public let staging: String
    public let files: [Target]

    /// Checks every path of `manifest` against what is in `directory` now; throws `PeerError(.output)` listing every
    /// problem, having written nothing.
    public init(manifest: Manifest, id: ContentHash, directory: String, force: Bool) throws {
        try PathRules.validate(all: manifest.files.map(\.path))
        var root = OutputFile.absolute(directory)
        while root.count > 1, root.hasSuffix("/") { root.removeLast() }
        var st = stat()
        if lstat(root, &st) == 0 {
            if (st.st_mode & S_IFMT) == S_IFLNK, let resolved = realpath(root, nil) {
                root = String(cString: resolved)
                free(resolved)
                guard stat(root, &st) == 0 else { throw PeerError(.output, "\(directory) is a broken link") }
            }
            guard (st.st_mode & S_IFMT) == S_IFDIR else {
                throw PeerError(
                    .output, "\(directory) exists and is not a folder; nothing was written: give a folder to -o")
            }
            rootExists = true
        } else {
            rootExists = false
        }
        guard let slash = root.lastIndex(of: "/"), root != "/" else {
            throw PeerError(.output, "cannot fetch a release into \(root)")
        }
        let parent = slash == root.startIndex ? "/" : String(root[..<slash])
        let base = String(root[root.index(after: slash)...])
        guard lstat(parent, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR || (st.st_mode & S_IFMT) == S_IFLNK else {
            throw PeerError(.output, "\(parent) does not exist; create it first (the fetch creates only \(base))")
        }
        staging = (parent == "/" ? "" : parent) + "/." + base + Self.stagingMarker + String(id.hex.prefix(16))
        self.root = root
        var problems: [String] = []
        var existing = false
        var targets: [Target] = []
        for file in manifest.files {
            let target = root + "/" + file.path
            guard rootExists else {
                targets.append(Target(file: file, action: .write))
                continue
            }
            // Each folder on the way must be a real folder (or not there yet: the commit creates it).
            var blocked = false
            var prefix = root
            for component in file.path.split(separator: "/").dropLast() {
                prefix += "/" + component
                guard lstat(prefix, &st) == 0 else { break }
                if (st.st_mode & S_IFMT) != S_IFDIR {
                    let what = (st.st_mode & S_IFMT) == S_IFLNK ? "a link" : "not a folder"
                    problems.append("\(prefix) is \(what); a release is never written through it")
                    blocked = true
                    break
                }
            }
            if blocked { continue }
            guard lstat(target, &st) == 0 else {
                targets.append(Target(file: file, action: .write))
                continue
            }
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                problems.append("\(target) is a folder where the release has a file")
            case S_IFREG where UInt64(st.st_size) == file.size && (try? Self.sha256(ofFile: target)) == file.sha256:
                targets.append(Target(file: file, action: .keep))
            default:
                if force {
                    targets.append(Target(file: file, action: .replace))
                } else {
                    let what = (st.st_mode & S_IFMT) == S_IFLNK ? "a link" : "a file with other content"
                    problems.append("\(target) exists (\(what))")
                    existing = true
                }
            }
        }
        if !problems.isEmpty {
            var list = problems.prefix(Self.maxListedProblems).joined(separator: "; ")
            if problems.count > Self.maxListedProblems {
                list += "; and \(problems.count - Self.maxListedProblems) more"
            }
            let advice =
                existing
                ? " Pass --force to replace existing files (links are replaced, never followed), or choose another -o."
                : " Remove them or choose another -o."
            throw PeerError(.output, "nothing was written to \(root): \(list).\(advice)")
        }
        files = targets
    }

    /// Creates the staging folder (or reuses one an earlier attempt left, if it is a real folder of this user that
    /// no one else can write to: in a shared parent such as /tmp, another user could have planted it).
    func makeStaging() throws {
        if mkdir(staging, 0o755) != 0 {
            var st = stat()
            guard errno == EEXIST, lstat(staging, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR,
                st.st_uid == getuid(), st.st_mode & 0o022 == 0
            else {
                throw PeerError(
                    .output, "cannot create the staging folder \(staging): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Creates the folders of `path` (relative) under `base`, refusing any that is a link or not a folder.
    static func makeParents(of path: String, under base: String) throws {
        var prefix = base
        for component in path.split(separator: "/").dropLast() {
            prefix += "/" + component
            var st = stat()
            if lstat(prefix, &st) == 0 {
                guard (st.st_mode & S_IFMT) == S_IFDIR else {
                    throw PeerError(
                        .output, "\(prefix) is a link or not a folder; a release is never written through it")
                }
            } else if mkdir(prefix, 0o755) != 0 {
                throw PeerError(.output, "cannot create \(prefix): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Moves every staged file into place and points the store's links at the final paths. With no folder there
    /// before, one rename moves them all; otherwise each file is renamed into the folder (without `replace`, never
    /// over something that appeared since the plan), and the staging folder is removed.
    func commit(store: ContentStore) throws {
        let moved = files.filter { $0.action != .keep }
        if !rootExists, rename(staging, root) == 0 {
            for target in moved {
                try store.relink(from: staging + "/" + target.file.path, to: root + "/" + target.file.path)
            }
            return
        }
        if !rootExists, mkdir(root, 0o755) != 0, errno != EEXIST {
            throw PeerError(.output, "cannot create \(root): \(String(cString: strerror(errno)))")
        }
        var st = stat()
        guard lstat(root, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw PeerError(.output, "\(root) changed during the fetch (now a link or not a folder); nothing moved")
        }
        for target in moved {
            let from = staging + "/" + target.file.path
            let to = root + "/" + target.file.path
            try Self.makeParents(of: target.file.path, under: root)
            if target.action == .replace {
                guard rename(from, to) == 0 else {
                    throw PeerError(.output, "cannot move \(from) to \(to): \(String(cString: strerror(errno)))")
                }
            } else {
                // No replace: a hard link fails if anything is at `to` by now; then the staged name goes.
                if link(from, to) == 0 {
                    unlink(from)
                } else {
                    // A file system without hard links: check, then rename (a narrow race instead of none).
                    var st = stat()
                    let appeared = errno == EEXIST || lstat(to, &st) == 0
                    guard !appeared, rename(from, to) == 0 else {
                        let why = appeared ? "it appeared during the fetch" : String(cString: strerror(errno))
                        throw PeerError(
                            .output, "cannot move \(from) to \(to): \(why); the staged file is kept, nothing replaced")
                    }
                }
            }
            try store.relink(from: from, to: to)
        }
        try? FileManager.default.removeItem(atPath: staging)
    }

    static func sha256(ofFile path: String) throws -> ContentHash {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw PeerError(.output, "cannot read \(path)") }
        defer { close(fd) }
        var hasher = SHA256Stream()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw PeerError(.output, "cannot read \(path)")
            }
            if n == 0 { break }
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
        return hasher.finalize()
    }
}
