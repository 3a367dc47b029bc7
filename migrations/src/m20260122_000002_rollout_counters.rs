//! Live rollout counters: terminals per tenant × prefecture × campaign × state, kept
//! up to date in the same transaction as the campaign states, so the rollout answer
//! never counts 300,000 rows. Filled from the existing campaign states once.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RolloutCounters {
    Table,
    Tenant,
    Prefecture,
    CampaignId,
    State,
    Terminals,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RolloutCounters::Table)
                    .if_not_exists()
                    .col(text(RolloutCounters::Tenant))
                    .col(text(RolloutCounters::Prefecture))
                    .col(text(RolloutCounters::CampaignId))
                    .col(text(RolloutCounters::State))
                    .col(big_integer(RolloutCounters::Terminals))
                    .primary_key(
                        Index::create()
                            .col(RolloutCounters::Tenant)
                            .col(RolloutCounters::Prefecture)
                            .col(RolloutCounters::CampaignId)
                            .col(RolloutCounters::State),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO rollout_counters (tenant, prefecture, campaign_id, state, terminals) \
                 SELECT tenant, prefecture, campaign_id, state, COUNT(*) FROM campaign_states \
                 GROUP BY tenant, prefecture, campaign_id, state",
            )
            .await?;
        Ok(())
    }
}
