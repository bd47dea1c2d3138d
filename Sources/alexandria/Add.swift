import AlexandriaCore
import AlexandriaHome
import AlexandriaStore
import ArgumentParser

#if canImport(Glibc)
    import Glibc
#endif

struct Add: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Add files (folders recursively) to the local store; print each file's address, size and Merkle root."
    )

    @OptionGroup var options: HomeOptions

    @Flag(help: "Print the results as JSON.")
    var json = false

    @Argument(help: "Files or folders to add.")
    var paths: [String]

    struct Row: Encodable {
        let path: String
        let address: String
        let size: UInt64
        let merkleRoot: String
        let chunks: Int
        let newChunks: Int
        let newBytes: UInt64
        let alreadyPresent: Bool
    }

    struct Failure: Encodable {
        let path: String
        let error: String
    }

    struct Report: Encodable {
        let files: [Row]
        let errors: [Failure]
        let totalBytes: UInt64
        let newBytes: UInt64
    }

    func run() throws {
        let home = options.resolved
        try ObjectStorage.checkWriter(home)
        let store = try home.openStore()
        // On an s3 home every add starts in a pack the index lists (see `sealOpenPacks`).
        if try home.objectStore() != nil { try store.sealOpenPacks() }
        var rows: [Row] = []
        var failures: [Failure] = []
        for path in paths {
            let files: [String]
            do {
                files = try FileWalk.regularFiles(under: path)
            } catch let error as CommandFailure {
                failures.append(Failure(path: path, error: error.message))
                if !json { Output.error(error.message) }
                continue
            }
            fileLoop: for file in files {
                var st = stat()
                stat(file, &st)
                let bar = ProgressBar(label: file, total: UInt64(max(0, st.st_size)))
                let outcome = Self.add(store: store, file: file, bar: bar)
                bar.finish()
                switch outcome {
                case .success(let result):
                    let row = Row(
                        path: file, address: result.address.description, size: result.size,
                        merkleRoot: result.merkleRoot.description, chunks: result.chunkCount,
                        newChunks: result.newChunks, newBytes: result.newBytes, alreadyPresent: result.alreadyPresent)
                    rows.append(row)
                    if !json {
                        Output.line("\(row.address)  \(row.size)  merkle:\(result.merkleRoot.hex)  \(file)")
                    }
                case .failure(let error):
                    failures.append(Failure(path: file, error: error.message))
                    if !json { Output.error(error.message) }
                    if [.budgetExceeded, .diskFull, .indexCorrupt, .indexLocked].contains(error.code) {
                        break fileLoop  // Every further file would fail the same way.
                    }
                }
            }
        }
        // On an s3 home the packs go to the bucket now; only then is the add done (Protocol/store-s3.md).
        try ObjectStorage.afterWrite(home, store)
        let total = rows.reduce(0) { $0 + $1.size }
        let new = rows.reduce(0) { $0 + $1.newBytes }
        if json {
            try Output.json(Report(files: rows, errors: failures, totalBytes: total, newBytes: new))
        } else if rows.count > 1 || (!rows.isEmpty && !failures.isEmpty) {
            let share = total == 0 ? 0 : Double(new) * 100 / Double(total)
            Output.line(
                "added \(rows.count) file(s), \(ByteSize.format(total)); \(ByteSize.format(new)) new to the store "
                    + "(\(String(format: "%.1f", share))%)")
        }
        if !failures.isEmpty {
            throw CommandFailure(message: "\(failures.count) path(s) could not be added; see above", exitCode: 3)
        }
    }
}

extension Add {
    static func add(store: ContentStore, file: String, bar: ProgressBar) -> Result<AddResult, StoreError> {
        do throws(StoreError) {
            return .success(try store.add(path: file) { bar.update($0) })
        } catch {
            return .failure(error)
        }
    }
}

/// Expands paths into the regular files under them, in a stable order.
enum FileWalk {
    /// Follows symbolic links to files; does not descend into symbolic links to folders (no cycles).
    static func regularFiles(under path: String) throws -> [String] {
        var st = stat()
        guard stat(path, &st) == 0 else {
            let reason = errno == ENOENT ? "no such file or directory" : String(cString: strerror(errno))
            throw CommandFailure(message: "\(path): \(reason)")
        }
        if (st.st_mode & S_IFMT) == S_IFREG { return [path] }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            throw CommandFailure(message: "\(path) is neither a file nor a folder")
        }
        guard let dir = opendir(path) else {
            throw CommandFailure(message: "\(path): cannot open folder: \(String(cString: strerror(errno)))")
        }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(dir)
        var out: [String] = []
        for name in names.sorted() {
            let child = path.hasSuffix("/") ? path + name : path + "/" + name
            var lst = stat()
            guard lstat(child, &lst) == 0 else { continue }
            if (lst.st_mode & S_IFMT) == S_IFLNK {
                var target = stat()
                if stat(child, &target) == 0 && (target.st_mode & S_IFMT) == S_IFREG { out.append(child) }
                continue
            }
            out += try regularFiles(under: child)
        }
        return out
    }
}
