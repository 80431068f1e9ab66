from tests.factories import flight_data


def test_a_customer_books_a_flight(staff, as_customer):
    flight = flight_data()
    assert staff.post("/api/v1/flights", flight, format="json").status_code == 201
    alice = as_customer("alice")
    r = alice.post("/api/v1/customers", {"customer_id": "alice", "full_name": "Alice"}, format="json")
    assert r.status_code == 201, r.json()
    r = alice.post(
        "/api/v1/customers/alice/orders", {"flight_number": flight["flight_number"], "flight_date": flight["flight_date"]}, format="json"
    )
    assert r.status_code == 201, r.json()
    assert r.json()["status"] == "ORDERED"
