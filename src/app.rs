//! The application context: what every command and task shares — the configuration, the one
//! clock, the store, the roster, the subject grammar, the templates, the rules' policy and the
//! outbox's wake-up. Built once at start (`shenbao run`, each command), then borrowed as
//! `&App` by the pipeline, the scheduled tasks, the corrections and the command line; built
//! again for another campaign when the scheduler crosses into it ([`App::moved_on`]) or a
//! board session looks at one.
//!
//! Not pure: building it reads the roster and the templates from disk.

use crate::campaign::roster::Roster;
use crate::campaign::rules;
use crate::campaign::subject::SubjectGrammar;
use crate::clock::Clock;
use crate::config::Config;
use crate::notify::compose::Templates;
use crate::store::Store;
use anyhow::Context as _;
use std::sync::Arc;
use tokio::sync::Notify;

/// What every command and task shares, built once at start.
pub struct App {
    pub store: Store,
    pub clock: Clock,
    pub cfg: Arc<Config>,
    pub grammar: SubjectGrammar,
    pub roster: Roster,
    pub templates: Templates,
    pub policy: rules::Policy,
    /// Woken whenever something is queued in the outbox.
    pub outbox: Arc<Notify>,
}

impl App {
    pub fn new(
        store: Store,
        clock: Clock,
        cfg: Arc<Config>,
        outbox: Arc<Notify>,
    ) -> anyhow::Result<App> {
        let grammar = SubjectGrammar::new(
            &cfg.campaign.application_subject,
            &cfg.campaign.closure_subject,
        )
        .context("配置 campaign.application_subject / closure_subject 有误")?;
        let roster = load_roster(&cfg.campaign.roster)?;
        let templates = crate::config::load_templates(cfg.ack.templates_dir.as_deref())?;
        let policy = rules::Policy {
            budget_cap_yuan: cfg.campaign.budget_cap_yuan,
            leader_roles: cfg.campaign.leader_roles.clone(),
        };
        Ok(App {
            // Reads are the current campaign's (`--campaign` chose it for a command); each
            // mail's own records name the campaign it belongs to.
            store: store.for_campaign(&cfg.campaign.id),
            clock,
            cfg,
            grammar,
            roster,
            templates,
            policy,
            outbox,
        })
    }

    /// The context of the campaign current at `now` when the calendar has moved on from this
    /// one's (a daemon running across the semesters' boundary): the same store, clock and
    /// outbox, that campaign's configuration, roster and reads. `None` while this one is still
    /// current.
    pub fn moved_on(&self, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<Option<App>> {
        let current = self.cfg.current_campaign(now);
        if current.id == self.cfg.campaign.id {
            return Ok(None);
        }
        self.for_campaign(&current.id).map(Some)
    }

    /// The context of campaign `id`: the same store, clock and outbox, that campaign's
    /// configuration ([`Config::with_campaign`]), roster and reads.
    pub fn for_campaign(&self, id: &str) -> anyhow::Result<App> {
        let cfg = (*self.cfg)
            .clone()
            .with_campaign(id)
            .map_err(anyhow::Error::msg)?;
        App::new(
            self.store.clone(),
            self.clock,
            Arc::new(cfg),
            self.outbox.clone(),
        )
    }
}

/// The roster CSV at `path`, with the file named in the error.
pub fn load_roster(path: &std::path::Path) -> anyhow::Result<Roster> {
    let file =
        std::fs::File::open(path).with_context(|| format!("打开支部名册 {}", path.display()))?;
    Roster::from_csv(file).with_context(|| format!("读取支部名册 {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::App;
    use std::sync::Arc;

    fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_default()
    }

    /// A context built in the autumn stays until spring opens; then it moves on to spring's
    /// configuration, roster and reads (the store scoped to spring), sharing the store.
    #[tokio::test]
    async fn the_context_moves_on_with_the_calendar() {
        let dir = std::env::temp_dir().join(format!("shenbao-app-moves-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(
            dir.join("autumn.csv"),
            "学院,支部名称,书记,书记邮箱\n土木工程学院,土木一支部,书记,a@example.edu.cn\n",
        )
        .expect("roster");
        std::fs::write(
            dir.join("spring.csv"),
            "学院,支部名称,书记,书记邮箱\n土木工程学院,土木一支部,书记,a@example.edu.cn\n海洋学院,海洋支部,书记,b@example.edu.cn\n",
        )
        .expect("roster");
        let autumn_now = at("2025-10-01T00:00:00Z");
        let cfg =
            crate::config::testing::two_semesters(&dir, "autumn.csv", "spring.csv", autumn_now);
        let store = crate::store::test_stores("app_moves")
            .await
            .into_iter()
            .next()
            .expect("a store");
        let app = App::new(
            store,
            crate::clock::Clock::set(autumn_now),
            Arc::new(cfg),
            Arc::new(tokio::sync::Notify::new()),
        )
        .expect("app");
        assert_eq!(app.store.campaign(), "2025-autumn");
        assert_eq!(app.roster.len(), 1);
        for still in ["2025-12-20T00:00:00Z", "2026-02-15T15:59:59Z"] {
            assert!(app.moved_on(at(still)).expect("check").is_none(), "{still}");
        }
        let spring = app
            .moved_on(at("2026-02-15T16:00:00Z"))
            .expect("check")
            .expect("moved on");
        assert_eq!(spring.cfg.campaign.id, "2026-spring");
        assert_eq!(spring.store.campaign(), "2026-spring");
        assert_eq!(spring.roster.len(), 2, "spring's own roster");
        assert!(
            spring
                .moved_on(at("2026-12-07T00:00:00Z"))
                .expect("check")
                .is_none()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
