-- sysbench workload of scripts/sysbench.sh: --mode=hot runs the guarded
-- decrement of one hot row (autocommit), --mode=select the point SELECT of
-- that row by primary key.
sysbench.cmdline.options = {
	mode = {"hot (guarded decrement of sku 1) or select (point SELECT of sku 1)", "hot"},
}

function thread_init()
	drv = sysbench.sql.driver()
	con = drv:connect()
	if sysbench.opt.mode == "hot" then
		stmt = "UPDATE inventory SET stock = stock - 1 WHERE sku_id = 1 AND stock >= 1"
	elseif sysbench.opt.mode == "select" then
		stmt = "SELECT stock FROM inventory WHERE sku_id = 1"
	else
		error("--mode must be hot or select")
	end
end

function event()
	con:query(stmt)
end

function thread_done()
	con:disconnect()
end
