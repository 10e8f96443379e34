//! `wasi:blobstore@0.2.0-draft` on the embedded store: containers and objects under the
//! state dir, granted by `blob_containers`, names that cannot leave the store, reads bounded
//! by the instance's memory, and data that outlives the process.

mod support;

use support::*;

const APP: &str = r#"
spin_manifest_version = 2
[application]
name = "blobs"
[[trigger.http]]
route = "/..."
component = "web"
[[trigger.http]]
route = "/other/..."
component = "other"
[component.web]
source = "{cloud_guest}"
blob_containers = ["photos", "archive"]
[component.other]
source = "{cloud_guest}"
"#;

fn blob(server: &Server, query: &str) -> (u16, String) {
    let r = server.get(&format!("/blob?{query}"));
    (r.status, r.body)
}

#[test]
fn granted_containers_hold_objects_in_the_state_dir_across_restarts() {
    let app = App::new(APP);
    // Where Spin keeps state by default: .spin beside the manifest.
    let state = app.path().join(".spin");
    let mut server = app.start(&[]);

    assert_eq!(blob(&server, "op=exists&c=photos"), (200, "false".into()));
    assert_eq!(blob(&server, "op=create&c=photos"), (200, "created photos".into()));
    assert_eq!(blob(&server, "op=create&c=photos"), (404, "container `photos` already exists".into()));
    assert_eq!(blob(&server, "op=get&c=archive&o=x"), (404, "container `archive` does not exist".into()));
    let put = server.post("/blob?op=put&c=photos&o=2024/cat.jpg", b"meow meow");
    assert_eq!((put.status, put.body.as_str()), (200, "wrote 9 bytes"));
    server.post("/blob?op=put&c=photos&o=dog.jpg", b"woof");
    assert_eq!(blob(&server, "op=list&c=photos"), (200, "2024/cat.jpg\ndog.jpg".into()));
    assert_eq!(blob(&server, "op=read&c=photos&o=2024/cat.jpg"), (200, "meow meow".into()));
    assert_eq!(blob(&server, "op=read&c=photos&o=2024/cat.jpg&start=5&end=7&async"), (200, "meo".into()));
    assert_eq!(blob(&server, "op=read&c=photos&o=2024/cat.jpg&start=5&end=99"), (200, "meow".into()));
    assert_eq!(blob(&server, "op=read&c=photos&o=2024/cat.jpg&start=50&end=60").0, 404);
    assert_eq!(blob(&server, "op=info&c=photos&o=dog.jpg"), (200, "photos dog.jpg 4 true".into()));
    assert_eq!(blob(&server, "op=has&c=photos&o=nope"), (200, "false".into()));
    assert_eq!(blob(&server, "op=read&c=photos&o=nope"), (404, "object `nope` does not exist in container `photos`".into()));

    // An overwrite replaces the whole object; no temporary file is left behind.
    server.post("/blob?op=put&c=photos&o=dog.jpg", b"WOOF!");
    assert_eq!(blob(&server, "op=read&c=photos&o=dog.jpg"), (200, "WOOF!".into()));
    let files: Vec<String> = std::fs::read_dir(state.join("blobs/photos")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(files.len(), 2, "one file per object, nothing else: {files:?}");

    // Copies and moves between granted containers.
    assert_eq!(blob(&server, "op=create&c=archive").0, 200);
    assert_eq!(blob(&server, "op=copy&c=photos&o=dog.jpg&dc=archive&do=dog-1.jpg"), (200, "copy".into()));
    assert_eq!(blob(&server, "op=move&c=photos&o=2024/cat.jpg&dc=archive&do=cat.jpg"), (200, "move".into()));
    assert_eq!(blob(&server, "op=list&c=photos"), (200, "dog.jpg".into()));
    assert_eq!(blob(&server, "op=list&c=archive"), (200, "cat.jpg\ndog-1.jpg".into()));
    assert_eq!(blob(&server, "op=delete&c=archive&o=dog-1.jpg"), (200, "deleted".into()));
    assert_eq!(blob(&server, "op=delete&c=archive&o=never-was"), (200, "deleted".into()));

    // The data outlives the process.
    server.terminate();
    let server = app.start(&[]);
    assert_eq!(blob(&server, "op=read&c=archive&o=cat.jpg"), (200, "meow meow".into()));
    assert_eq!(blob(&server, "op=clear&c=photos"), (200, "cleared".into()));
    assert_eq!(blob(&server, "op=list&c=photos"), (200, "".into()));
    assert_eq!(blob(&server, "op=delete-container&c=photos"), (200, "deleted".into()));
    assert_eq!(blob(&server, "op=exists&c=photos"), (200, "false".into()));
}

#[test]
fn names_cannot_escape_and_ungranted_containers_are_refused() {
    let app = App::new(APP);
    let state = app.path().join("state");
    let server = app.start_with_runtime_config(&format!("state_dir = \"{}\"\n", state.display()));
    assert_eq!(blob(&server, "op=create&c=photos").0, 200);

    // Ungranted containers, for creating, reading and as a copy's destination.
    assert_eq!(blob(&server, "op=create&c=secrets"), (404, "container `secrets` is not permitted".into()));
    let log = server.wait_for_log("may not use blob container `secrets`");
    assert!(log.contains("add \"secrets\" to blob_containers in [component.web]"), "{log}");
    assert_eq!(server.get("/other/blob?op=get&c=photos").status, 404, "a component with no grant reaches no container");
    assert_eq!(blob(&server, "op=copy&c=photos&o=x&dc=secrets&do=x"), (404, "container `secrets` is not permitted".into()));

    // Names that would leave the store.
    for (query, words) in [
        ("op=create&c=..", "container name `..`"),
        ("op=create&c=a%2Fb", "container name"),
        ("op=get&c=*", "`*` is not a container name"),
    ] {
        let (status, body) = blob(&server, query);
        assert!(status == 404 && body.contains(words), "{query}: {status} {body}");
    }
    for name in ["../../escaped", "/etc/passwd", "a/../../b", ".."] {
        let r = server.post(&format!("/blob?op=put&c=photos&o={name}"), b"x");
        assert!(r.status == 404 && r.body.contains("absolute or `.`/`..` path"), "{name}: {} {}", r.status, r.body);
    }
    assert!(!app.path().join("escaped").exists() && !state.join("escaped").exists() && !state.join("b").exists());
    // Odd but harmless names are kept inside the container, and read back as written.
    let r = server.post("/blob?op=put&c=photos&o=.hidden%25name", b"ok");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(blob(&server, "op=list&c=photos"), (200, ".hidden%25name".into()));
    assert!(std::fs::read_dir(state.join("blobs/photos")).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().starts_with('.')));
}

#[test]
fn a_read_larger_than_the_instance_memory_is_refused_with_the_fix() {
    let app = App::new(APP);
    let state = app.path().join("state");
    let server = app.start_with_runtime_config(&format!("state_dir = \"{}\"\nmax_instance_memory = \"4MiB\"\n", state.display()));
    assert_eq!(blob(&server, "op=create&c=photos").0, 200);
    // Written outside the guest, as another process might.
    std::fs::write(state.join("blobs/photos/big"), vec![b'x'; 6 << 20]).unwrap();
    let (status, body) = blob(&server, "op=read&c=photos&o=big");
    assert!(status == 404 && body.contains("over the instance's memory limit of 4194304 bytes; read the object in smaller ranges"), "{status} {body}");
    assert_eq!(blob(&server, "op=read&c=photos&o=big&start=0&end=9"), (200, "xxxxxxxxxx".into()));
}
