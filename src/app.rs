//! The application context: what every command and task shares — the configuration, the one
//! clock, the store, the roster, the subject grammar, the templates, the rules' policy and the
//! outbox's wake-up. Built once at start (`shenbao run`, each command), then borrowed as
//! `&App` by the pipeline, the scheduled tasks, the corrections and the command line.
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
        let roster_file = std::fs::File::open(&cfg.campaign.roster)
            .with_context(|| format!("打开支部名册 {}", cfg.campaign.roster.display()))?;
        let roster = Roster::from_csv(roster_file)
            .with_context(|| format!("读取支部名册 {}", cfg.campaign.roster.display()))?;
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
}
