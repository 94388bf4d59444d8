//! The Flight SQL service over one DataFusion session: statements and
//! prepared statements (planned, checked read-only, run under `Limits`),
//! and the catalog metadata generic clients browse with (catalogs, schemas,
//! tables with their Arrow schemas, table types, server info).
//!
//! Stateless: a ticket or prepared-statement handle carries the SQL text
//! itself, so any call can be served without remembering earlier ones.

use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate, CommandStatementIngest, CommandStatementQuery,
    CommandStatementSubstraitPlan, CommandStatementUpdate, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, IpcMessage, SchemaAsIpc,
    Ticket,
};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::TableType;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::LogicalPlan;
use futures::{Stream, TryStreamExt};
use prost::Message;
use tokio::sync::Semaphore;
use tonic::{Request, Response, Status};

use super::limits::{Bounded, Limits};

type DoGetStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send + 'static>>;

/// Table types as Flight SQL clients name them (DataFusion's own names in
/// `information_schema.tables` are BASE TABLE, VIEW, LOCAL TEMPORARY).
const TABLE_TYPES: [&str; 3] = ["TABLE", "VIEW", "LOCAL TEMPORARY"];

pub struct FlightSqlEndpoint {
    ctx: SessionContext,
    limits: Limits,
    running: Arc<Semaphore>,
    sql_info: SqlInfoData,
}

impl FlightSqlEndpoint {
    pub fn new(ctx: SessionContext, limits: Limits) -> anyhow::Result<Self> {
        let mut info = SqlInfoDataBuilder::new();
        info.append(SqlInfo::FlightSqlServerName, "dajia");
        info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        info.append(SqlInfo::FlightSqlServerReadOnly, true);
        info.append(SqlInfo::FlightSqlServerSql, true);
        info.append(SqlInfo::FlightSqlServerSubstrait, false);
        // SqlSupportedTransaction::None: every statement stands alone.
        info.append(SqlInfo::FlightSqlServerTransaction, 0i32);
        info.append(SqlInfo::FlightSqlServerCancel, false);
        info.append(
            SqlInfo::FlightSqlServerStatementTimeout,
            i32::try_from(limits.timeout.as_millis()).unwrap_or(i32::MAX),
        );
        Ok(Self {
            running: Arc::new(Semaphore::new(limits.max_concurrent)),
            ctx,
            limits,
            sql_info: info.build()?,
        })
    }

    /// `sql` as a logical plan, refused unless it only reads.
    async fn plan(&self, sql: &str) -> Result<LogicalPlan, Status> {
        let plan = self
            .ctx
            .state()
            .create_logical_plan(sql)
            .await
            .map_err(df_status)?;
        // SET too: each call is planned on its own, so a setting would not
        // last, and the session is shared by every client.
        crate::sql::verify_read_only(&plan, false, false).map_err(|e| {
            Status::permission_denied(format!("dajia's Flight SQL endpoint is read-only: {e}"))
        })?;
        Ok(plan)
    }

    /// The schema `sql`'s result will have (what FlightInfo announces and
    /// DoGet then sends: the same one, as strict clients such as ADBC
    /// require).
    async fn result_schema(&self, sql: &str, peer: String) -> Result<SchemaRef, Status> {
        let plan = tokio::time::timeout(self.limits.timeout, self.plan(sql))
            .await
            .map_err(|_| self.limits.timed_out())
            .and_then(|p| p);
        match plan {
            Ok(plan) => Ok(plan.schema().inner().clone()),
            Err(e) => {
                log_query(&peer, sql, Err(&e));
                Err(e)
            }
        }
    }

    /// Run `sql` and stream its batches within the limits.
    async fn run(&self, sql: &str, peer: String) -> Result<Response<DoGetStream>, Status> {
        let permit = self.limits.admit(&self.running)?;
        let deadline = tokio::time::Instant::now() + self.limits.timeout;
        let start = async {
            let plan = self.plan(sql).await?;
            let schema = plan.schema().inner().clone();
            let stream = self
                .ctx
                .execute_logical_plan(plan)
                .await
                .map_err(df_status)?
                .execute_stream()
                .await
                .map_err(df_status)?;
            Ok::<_, Status>((schema, stream))
        };
        let (schema, stream) = match tokio::time::timeout_at(deadline, start).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                log_query(&peer, sql, Err(&e));
                return Err(e);
            }
            Err(_) => {
                let e = self.limits.timed_out();
                log_query(&peer, sql, Err(&e));
                return Err(e);
            }
        };
        log_query(&peer, sql, Ok(()));
        let batches = Bounded::new(stream, self.limits.clone(), deadline, permit);
        let data = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(Status::from);
        Ok(Response::new(Box::pin(data)))
    }

    /// Every table of the session: catalog, schema, name, Flight SQL type
    /// and Arrow schema.
    async fn tables(
        &self,
    ) -> Result<Vec<(String, String, String, &'static str, SchemaRef)>, Status> {
        let mut out = Vec::new();
        for c in self.ctx.catalog_names() {
            let Some(catalog) = self.ctx.catalog(&c) else {
                continue;
            };
            for s in catalog.schema_names() {
                let Some(schema) = catalog.schema(&s) else {
                    continue;
                };
                for t in schema.table_names() {
                    let Some(table) = schema.table(&t).await.map_err(df_status)? else {
                        continue;
                    };
                    let kind = match table.table_type() {
                        TableType::Base => TABLE_TYPES[0],
                        TableType::View => TABLE_TYPES[1],
                        TableType::Temporary => TABLE_TYPES[2],
                    };
                    out.push((c.clone(), s.clone(), t, kind, table.schema()));
                }
            }
        }
        out.sort_by(|a, b| (&a.0, &a.1, &a.2).cmp(&(&b.0, &b.1, &b.2)));
        Ok(out)
    }
}

/// A DataFusion error as a gRPC status: the user's mistakes (SQL, planning,
/// schema) are INVALID_ARGUMENT, memory limits RESOURCE_EXHAUSTED, the rest
/// INTERNAL; the message is one line.
pub(super) fn df_status(e: DataFusionError) -> Status {
    let msg = one_line(&e);
    match e.find_root() {
        DataFusionError::SQL(..) | DataFusionError::Plan(_) | DataFusionError::SchemaError(..) => {
            Status::invalid_argument(msg)
        }
        DataFusionError::ResourcesExhausted(_) => Status::resource_exhausted(msg),
        DataFusionError::NotImplemented(_) => Status::unimplemented(msg),
        _ => Status::internal(msg),
    }
}

fn one_line(e: &DataFusionError) -> String {
    e.strip_backtrace().replace('\n', " ")
}

fn log_query(peer: &str, sql: &str, outcome: Result<(), &Status>) {
    let first: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    let first: String = first.chars().take(160).collect();
    match outcome {
        Ok(()) => eprintln!("flight-sql: {peer}: running: {first}"),
        Err(e) => eprintln!(
            "flight-sql: {peer}: refused ({:?}): {first}: {}",
            e.code(),
            e.message()
        ),
    }
}

fn peer<T>(request: &Request<T>) -> String {
    request
        .remote_addr()
        .map_or_else(|| "unknown peer".to_string(), |a| a.to_string())
}

fn flight_info(
    schema: &Schema,
    ticket: Vec<u8>,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(arrow_status)?
        .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
        .with_descriptor(descriptor);
    Ok(Response::new(info))
}

/// One batch built by a metadata builder, as a DoGet stream.
fn one_batch(batch: Result<RecordBatch, FlightError>) -> Result<Response<DoGetStream>, Status> {
    let batch = batch.map_err(Status::from)?;
    let data = FlightDataEncoderBuilder::new()
        .with_schema(batch.schema())
        .build(futures::stream::once(async { Ok(batch) }))
        .map_err(Status::from);
    Ok(Response::new(Box::pin(data)))
}

fn arrow_status(e: ArrowError) -> Status {
    Status::internal(e.to_string())
}

fn handle_sql(handle: &[u8]) -> Result<&str, Status> {
    std::str::from_utf8(handle)
        .map_err(|_| Status::invalid_argument("the statement handle is not UTF-8 SQL text"))
}

fn read_only<T>(what: &str) -> Result<T, Status> {
    Err(Status::permission_denied(format!(
        "dajia's Flight SQL endpoint is read-only: {what} is refused"
    )))
}

#[tonic::async_trait]
impl FlightSqlService for FlightSqlEndpoint {
    type FlightService = FlightSqlEndpoint;

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = self.result_schema(&query.query, peer(&request)).await?;
        let ticket = TicketStatementQuery {
            statement_handle: query.query.into_bytes().into(),
        };
        flight_info(
            &schema,
            ticket.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let sql = handle_sql(&ticket.statement_handle)?;
        self.run(sql, peer(&request)).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let schema = self.result_schema(&query.query, peer(&request)).await?;
        let ipc = IpcMessage::try_from(SchemaAsIpc::new(&schema, &IpcWriteOptions::default()))
            .map_err(arrow_status)?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: query.query.into_bytes().into(),
            dataset_schema: ipc.0,
            parameter_schema: Default::default(),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let sql = handle_sql(&cmd.prepared_statement_handle)?;
        let schema = self.result_schema(sql, peer(&request)).await?;
        flight_info(&schema, cmd.as_any().encode_to_vec(), request.into_inner())
    }

    async fn do_get_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let sql = handle_sql(&cmd.prepared_statement_handle)?;
        self.run(sql, peer(&request)).await
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        _request: Request<Action>,
    ) -> Result<(), Status> {
        // Nothing is kept per statement.
        Ok(())
    }

    async fn do_put_statement_update(
        &self,
        _ticket: CommandStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        read_only("an update statement")
    }

    async fn do_put_prepared_statement_update(
        &self,
        _query: CommandPreparedStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        read_only("an update statement")
    }

    async fn do_put_statement_ingest(
        &self,
        _ticket: CommandStatementIngest,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        read_only("bulk ingestion")
    }

    async fn do_put_substrait_plan(
        &self,
        _query: CommandStatementSubstraitPlan,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        read_only("a Substrait plan update")
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let ticket = query.as_any().encode_to_vec();
        flight_info(&query.into_builder().schema(), ticket, request.into_inner())
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let mut b = query.into_builder();
        let mut names = self.ctx.catalog_names();
        names.sort();
        for c in names {
            b.append(c);
        }
        one_batch(b.build())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let ticket = query.as_any().encode_to_vec();
        flight_info(&query.into_builder().schema(), ticket, request.into_inner())
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let mut b = query.into_builder();
        for c in self.ctx.catalog_names() {
            if let Some(catalog) = self.ctx.catalog(&c) {
                for s in catalog.schema_names() {
                    b.append(&c, s);
                }
            }
        }
        // (The builder filters by the request's catalog and pattern, and sorts.)
        one_batch(b.build())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let ticket = query.as_any().encode_to_vec();
        flight_info(&query.into_builder().schema(), ticket, request.into_inner())
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let mut b = query.into_builder();
        for (c, s, t, kind, schema) in self.tables().await? {
            b.append(c, s, t, kind, &schema).map_err(Status::from)?;
        }
        one_batch(b.build())
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let ticket = query.as_any().encode_to_vec();
        flight_info(&query.into_builder().schema(), ticket, request.into_inner())
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let mut b = query.into_builder();
        for t in TABLE_TYPES {
            b.append(t);
        }
        one_batch(b.build())
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let ticket = query.as_any().encode_to_vec();
        let schema = query.into_builder(&self.sql_info).schema();
        flight_info(&schema, ticket, request.into_inner())
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        one_batch(query.into_builder(&self.sql_info).build())
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
