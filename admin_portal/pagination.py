"""Pagination that reads a page's keys from the index and only then the page's rows.

`ORDER BY ... LIMIT 50 OFFSET n` over a selection of thousands of bookings makes MySQL sort
(and so read) every matching row. Selecting the primary keys first keeps the sort inside a
covering index (the passenger indexes end in `deleted` and carry the primary key), and the
page's 50 rows are then fetched by primary key: a "deferred join".
"""

from django.core.paginator import Paginator


class DeferredJoinPaginator(Paginator):
    def page(self, number):
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        keys = list(self.object_list.values_list("pk", flat=True)[bottom:top])
        rows = self.object_list.order_by().in_bulk(keys)
        return self._get_page([rows[key] for key in keys if key in rows], number, self)
