"""Users the tests send: the original example of the specification, and one with every field."""

ORIGINAL_EXAMPLE = {"age": 30, "company": "4You", "name_length": 12}
# Every field of the input contract.
FULL_USER = {
    "name": "Dr Jane Smith",
    "title": "Dr",
    "country": "GB",
    "age": 41.5,
    "company": "Acme Factory",
    "name_length": 10,
    "travel_count": 12,
    "avg_flight_price": 850.0,
    "total_flight_spend": 10200.0,
    "avg_distance": 640.5,
    "share_economic": 0.5,
    "share_premium": 0.25,
    "share_firstclass": 0.25,
    "hotel_nights": 9,
    "avg_hotel_spend": 120.0,
}
