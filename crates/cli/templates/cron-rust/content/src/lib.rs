//! A cron component: runs on the schedule in spin.toml and prints when it ran.

wit_bindgen::generate!({ world: "spin-cron", path: "wit" });

struct Job;

impl Guest for Job {
    fn handle_cron_event(metadata: Metadata) -> Result<(), Error> {
        println!("{{project-name}} ran at {}", metadata.timestamp);
        Ok(())
    }
}

export!(Job);
